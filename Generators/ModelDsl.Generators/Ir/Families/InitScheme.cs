using System;
using ModelDsl.Generators.Ir.Layouts;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir.Families
{
    /// <summary>
    /// How each family initialises its matrices, as its reference implementation does (Hugging Face's
    /// _init_weights): N(0, 0.02) for GPT-2, BERT, ViT and Llama, with GPT-2's residual projections scaled by
    /// 1/sqrt(2 x layers); T5's fan-in rule (q: (Hidden x HeadDim)^-0.5, k/v and inputs: Hidden^-0.5, o:
    /// (Heads x HeadDim)^-0.5, wo: Inner^-0.5, embeddings and the untied head: 1). Norm gains start at 1, biases at 0.
    /// </summary>
    internal sealed class InitScheme
    {
        private const string Sqrt = "global::System.Math.Sqrt";

        private readonly ModelSpec spec;
        private readonly bool t5;
        private readonly bool gpt2;

        public InitScheme(ModelSpec spec, CheckpointLayout layout)
        {
            this.spec = spec;
            t5 = layout is T5Layout;
            gpt2 = layout is Gpt2Layout;
        }

        public InitRule Normal(Role role)
        {
            if (t5) return T5(role);
            if (gpt2 && role is Role.AttentionOutput or Role.FeedForwardDown or Role.ExpertDown or Role.CrossOutput)
            {
                // GPT-2 paper, section 2.3: residual layers scaled by 1/sqrt(N), N = 2 residual branches per layer.
                int layers = spec.Stacks.Total;
                return InitRule.Normal(0.02 / Math.Sqrt(2.0 * layers), "0.02 / " + Sqrt + "(2 * DecoderLayers)");
            }
            return InitRule.Normal(0.02, "0.02");
        }

        private InitRule T5(Role role)
        {
            double hidden = spec.Hidden, headDim = spec.HeadDim, heads = spec.Heads, inner = spec.Inner;
            return role switch
            {
                Role.Query or Role.CrossQuery => InitRule.Normal(1 / Math.Sqrt(hidden * headDim), "1.0 / " + Sqrt + "(Hidden * HeadDim)"),
                Role.AttentionOutput or Role.CrossOutput => InitRule.Normal(1 / Math.Sqrt(heads * headDim), "1.0 / " + Sqrt + "(Heads * HeadDim)"),
                Role.FeedForwardDown or Role.ExpertDown => InitRule.Normal(1 / Math.Sqrt(inner), "1.0 / " + Sqrt + "(Inner)"),
                Role.TokenEmbedding or Role.LmHead or Role.PositionEmbedding => InitRule.Normal(1.0, "1.0"),
                _ => InitRule.Normal(1 / Math.Sqrt(hidden), "1.0 / " + Sqrt + "(Hidden)"),
            };
        }
    }
}
