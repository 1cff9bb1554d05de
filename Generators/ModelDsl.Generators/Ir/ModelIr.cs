using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir
{
    /// <summary>A dimension with its meaning: shapes read "[Hidden=64, Inner=256]", never bare numbers.</summary>
    internal sealed record Dim(string Symbol, int Size)
    {
        public override string ToString() => Symbol + "=" + Size.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>How a parameter starts: N(0, std), zeros or ones.</summary>
    internal enum Init { Normal, Zeros, Ones }

    /// <summary>A trainable tensor at a checkpoint-relative name, with its typed shape.</summary>
    internal sealed record IrParameter(string Name, EquatableArray<Dim> Shape, Init Init, double Std = 0)
    {
        public long Elements => Shape.Aggregate(1L, (n, d) => n * d.Size);
    }

    /// <summary>The kinds of block the emitters know.</summary>
    internal enum BlockKind
    {
        Model, TokenEmbedding, PositionEmbedding, Dropout, Stack, DecoderBlock, Norm, CausalSelfAttention,
        FeedForward, Projection, TiedLmHead, LmHead,
    }

    /// <summary>
    /// One node of the block graph: its Hugging Face name, kind, own parameters and children. A Stack repeats
    /// its single child Count times under names "0", "1", ... (GPT-2's "h.0", "h.1").
    /// </summary>
    internal sealed record Block(string Name, BlockKind Kind, EquatableArray<IrParameter> Parameters,
        EquatableArray<Block> Children, int Count = 1)
    {
        public long ParameterCount
            => Count * (Parameters.Sum(p => p.Elements) + Children.Sum(c => c.ParameterCount));

        public Block Child(string name) => Children.First(c => c.Name == name);
    }

    /// <summary>The validated spec and its block graph: what every emitter works from.</summary>
    internal sealed record ModelIr(ModelSpec Spec, Block Root)
    {
        public long ParameterCount => Root.ParameterCount;
    }
}
