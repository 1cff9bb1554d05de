using System;
using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir
{
    /// <summary>
    /// Builds the block graph of a valid spec, with Hugging Face parameter names and layouts. Initialisation
    /// follows GPT-2: N(0, 0.02), residual output projections scaled by 1/sqrt(2 x layers).
    /// </summary>
    internal static class IrBuilder
    {
        private const double Std = 0.02;

        /// <summary>Whether a block graph exists for the spec's family yet.</summary>
        public static bool Supports(ModelSpec spec) => spec.Family == ModelFamily.Decoder;

        public static ModelIr Build(ModelSpec spec) => spec.Family switch
        {
            ModelFamily.Decoder => new ModelIr(spec, Decoder(spec)),
            _ => throw new NotSupportedException($"No block graph for the {spec.Family} family yet."),
        };

        private static Block Decoder(ModelSpec spec)
        {
            var hidden = new Dim("Hidden", spec.Hidden);
            var inner = new Dim("Inner", spec.Inner);
            double residualStd = Std / Math.Sqrt(2.0 * spec.Stacks.Total);

            Block Norm(string name) => Leaf(name, BlockKind.Norm,
                new IrParameter("weight", Shape(hidden), Init.Ones),
                new IrParameter("bias", Shape(hidden), Init.Zeros));

            Block Projection(string name, Dim input, Dim output, double std) => Leaf(name, BlockKind.Projection,
                new IrParameter("weight", Shape(input, output), Init.Normal, std),
                new IrParameter("bias", Shape(output), Init.Zeros));

            var attention = Node("attn", BlockKind.CausalSelfAttention,
                Projection("c_attn", hidden, new Dim("3*Hidden", 3 * spec.Hidden), Std),
                Projection("c_proj", hidden, hidden, residualStd));
            var feedForward = Node("mlp", BlockKind.FeedForward,
                Projection("c_fc", hidden, inner, Std),
                Projection("c_proj", inner, hidden, residualStd));
            var block = Node("", BlockKind.DecoderBlock, Norm("ln_1"), attention, Norm("ln_2"), feedForward);

            var embeddingsAndBlocks = new[]
            {
                Leaf("wte", BlockKind.TokenEmbedding, new IrParameter("weight", Shape(new Dim("Vocab", spec.Vocab), hidden), Init.Normal, Std)),
                Leaf("wpe", BlockKind.PositionEmbedding, new IrParameter("weight", Shape(new Dim("Context", spec.Context), hidden), Init.Normal, Std)),
                new Block("h", BlockKind.Stack, EquatableArray<IrParameter>.Empty, Shape(block), spec.Stacks.Total),
            };
            // Pre-norm stacks end with a final norm (GPT-2's ln_f); post-norm blocks already end normalised.
            var transformer = spec.Norm.Placement == NormPlacement.Pre
                ? Node("transformer", BlockKind.Model, embeddingsAndBlocks.Concat(new[] { Norm("ln_f") }).ToArray())
                : Node("transformer", BlockKind.Model, embeddingsAndBlocks);

            var head = spec.Embeddings.Tied
                ? Leaf("lm_head", BlockKind.TiedLmHead)
                : Leaf("lm_head", BlockKind.LmHead, new IrParameter("weight", Shape(new Dim("Vocab", spec.Vocab), hidden), Init.Normal, Std));
            return Node("", BlockKind.Model, transformer, head);
        }

        private static Block Leaf(string name, BlockKind kind, params IrParameter[] parameters)
            => new(name, kind, parameters.ToEquatableArray(), EquatableArray<Block>.Empty);

        private static Block Node(string name, BlockKind kind, params Block[] children)
            => new(name, kind, EquatableArray<IrParameter>.Empty, children.ToEquatableArray());

        private static EquatableArray<T> Shape<T>(params T[] items) where T : IEquatable<T> => items.ToEquatableArray();
    }
}
