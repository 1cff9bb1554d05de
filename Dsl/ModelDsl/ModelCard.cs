using System;
using System.Globalization;

namespace ModelDsl
{
    /// <summary>
    /// Facts about a declared model that the generator computes at compile time from its shapes: sizes,
    /// parameter count and cost formulas. Every generated model exposes one as <c>Card</c>.
    /// </summary>
    public sealed class ModelCard
    {
        /// <summary>Creates a card; called by generated code.</summary>
        public ModelCard(string name, string family, int vocab, int context, int hidden, int heads, int kvHeads,
            int headDim, int layers, int inner, long parameterCount)
        {
            Name = name; Family = family; Vocab = vocab; Context = context; Hidden = hidden; Heads = heads;
            KvHeads = kvHeads; HeadDim = headDim; Layers = layers; Inner = inner; ParameterCount = parameterCount;
        }

        /// <summary>The declaring type's name.</summary>
        public string Name { get; }
        /// <summary>Decoder, Encoder, EncoderDecoder or VisionEncoder.</summary>
        public string Family { get; }
        /// <summary>Vocabulary size (0 for vision models).</summary>
        public int Vocab { get; }
        /// <summary>Longest sequence.</summary>
        public int Context { get; }
        /// <summary>Model width.</summary>
        public int Hidden { get; }
        /// <summary>Query heads.</summary>
        public int Heads { get; }
        /// <summary>Key/value heads.</summary>
        public int KvHeads { get; }
        /// <summary>Per-head width.</summary>
        public int HeadDim { get; }
        /// <summary>Transformer blocks (all stacks).</summary>
        public int Layers { get; }
        /// <summary>Feed-forward inner width.</summary>
        public int Inner { get; }
        /// <summary>Trainable parameters, counting tied matrices once.</summary>
        public long ParameterCount { get; }

        /// <summary>
        /// Forward FLOPs per token at sequence length <paramref name="sequenceLength"/>: 2 per weight multiply-add
        /// plus the attention score and value products (2 x 2 x layers x T x heads x headDim), as in the PaLM
        /// appendix. A training step costs about three times this.
        /// </summary>
        public long ForwardFlopsPerToken(int sequenceLength)
            => 2 * ParameterCount + 4L * Layers * sequenceLength * Heads * HeadDim;

        /// <inheritdoc />
        public override string ToString() => string.Format(CultureInfo.InvariantCulture,
            "{0} ({1}): {2:N0} parameters, vocab {3}, context {4}, hidden {5}, heads {6} (kv {7}, dim {8}), layers {9}, inner {10}",
            Name, Family, ParameterCount, Vocab, Context, Hidden, Heads, KvHeads, HeadDim, Layers, Inner);
    }
}
