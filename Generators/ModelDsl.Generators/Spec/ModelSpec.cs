using ModelDsl.Generators.Helpers;

namespace ModelDsl.Generators.Spec
{
    /// <summary>Where the generated code goes: the declaring type and the types it is nested in.</summary>
    /// <param name="Namespace">The namespace, or "" for the global namespace.</param>
    /// <param name="Name">The type's name.</param>
    /// <param name="Keyword">"record", "class", "record struct" or "struct", as declared.</param>
    /// <param name="IsPartial">Whether every declaration of the type (and of its containers) is partial.</param>
    /// <param name="IsGeneric">Whether the type or a container has type parameters (not supported).</param>
    /// <param name="Containers">Containing type declarations, outermost first, e.g. "partial class Models".</param>
    internal sealed record TypeSpec(
        string Namespace,
        string Name,
        string Keyword,
        bool IsPartial,
        bool IsGeneric,
        EquatableArray<string> Containers)
    {
        /// <summary>"Ns.Outer.Model": the namespace, the containing types and the name.</summary>
        public string FullName
        {
            get
            {
                var parts = new System.Collections.Generic.List<string>();
                if (Namespace.Length > 0) parts.Add(Namespace);
                foreach (var container in Containers) parts.Add(container.Substring(container.LastIndexOf(' ') + 1));
                parts.Add(Name);
                return string.Join(".", parts);
            }
        }
    }

    /// <summary>The family attribute's sizes. Null: not written (MDSL0004 where the family needs it).</summary>
    internal sealed record DimensionsSpec(int? Vocab, int? Context, int? Hidden, int? Heads);

    /// <summary>Block counts per stack, named by the stack: a [Decoder] has decoder layers, an [Encoder] encoder layers.</summary>
    internal sealed record StacksSpec(int? EncoderLayers, int? DecoderLayers)
    {
        /// <summary>Blocks across all stacks (0 for a stack not written).</summary>
        public int Total => (EncoderLayers ?? 0) + (DecoderLayers ?? 0);
    }

    /// <summary>[VisionEncoder]'s image geometry; all null for other families.</summary>
    internal sealed record VisionSpec(int? ImageSize, int? PatchSize, int? Channels);

    /// <summary>[Attention]. Null: the default derived from the core dimensions (KvHeads = Heads, ...); Window null is full context.</summary>
    internal sealed record AttentionSpec(int? KvHeads, int? HeadDim, int? Window, bool Bias);

    /// <summary>[FeedForward]. Inner null: 4 x Hidden.</summary>
    internal sealed record FeedForwardSpec(int? Inner, Activation Activation, bool Bias)
    {
        public bool IsGated => Activation is Activation.SwiGlu or Activation.GeGlu;
    }

    /// <summary>The position scheme (written, or the family's default) and its arguments.</summary>
    internal sealed record PositionsSpec(PositionKind Kind, double RotaryBase, int RelativeBuckets, int RelativeMaxDistance);

    /// <summary>[PreNorm] / [PostNorm], or the family's default.</summary>
    internal sealed record NormSpec(NormPlacement Placement, NormKind Kind, double Epsilon);

    /// <summary>Token embeddings: tied to the LM head or not; segment (token-type) ids, null without [SegmentEmbeddings].</summary>
    internal sealed record EmbeddingsSpec(bool Tied, int? SegmentTypes);

    /// <summary>A classification head: [ClassificationHead] on an encoder, Classes on [VisionEncoder].</summary>
    internal sealed record ClassifierSpec(int? Classes);

    /// <summary>[MixtureOfExperts]. Experts null: not written (MDSL0004).</summary>
    internal sealed record ExpertsSpec(int? Experts, int TopK, int Every, double AuxLossWeight, double ZLossWeight);

    /// <summary>[Lora].</summary>
    internal sealed record LoraSpec(int Rank, double Alpha, LoraTargets Targets);

    /// <summary>
    /// Everything a declaration says, as values: no symbols, no syntax, so the pipeline can compare and cache it.
    /// Split by concern; a value that was not written is null, never 0, and defaults that other values determine
    /// (KvHeads = Heads, ...) are resolved by the members at the end. <see cref="Attributes"/> lists the DSL
    /// attributes in source order (findings name them as sites).
    /// </summary>
    internal sealed record ModelSpec(
        TypeSpec Type,
        ModelFamily Family,
        EquatableArray<string> Attributes,
        DimensionsSpec Dimensions,
        StacksSpec Stacks,
        VisionSpec Vision,
        AttentionSpec Attention,
        FeedForwardSpec FeedForward,
        PositionsSpec Positions,
        NormSpec Norm,
        EmbeddingsSpec Embeddings,
        ClassifierSpec? Classifier,
        ExpertsSpec? Experts,
        LoraSpec? Lora,
        double? Dropout)
    {
        public string Name => Type.Name;

        public bool Has(string attribute) => Attributes.AsImmutableArray().Contains(attribute);

        // Resolved values of a valid spec (the validator has checked every required value is there).
        public int Vocab => Dimensions.Vocab ?? 0;
        public int Context => Dimensions.Context ?? 0;
        public int Hidden => Dimensions.Hidden ?? 0;
        public int Heads => Dimensions.Heads ?? 0;
        public int KvHeads => Attention.KvHeads ?? Heads;
        public int HeadDim => Attention.HeadDim ?? (Heads > 0 ? Hidden / Heads : 0);
        public int Inner => FeedForward.Inner ?? 4 * Hidden;
        public int Classes => Classifier?.Classes ?? 0;
        public double DropoutRate => Dropout ?? 0.0;
        public int ImageSize => Vision.ImageSize ?? 0;
        public int PatchSize => Vision.PatchSize ?? 0;
        public int Channels => Vision.Channels ?? 0;

        /// <summary>Patches per image side (ViT).</summary>
        public int PatchesPerSide => PatchSize > 0 ? ImageSize / PatchSize : 0;
    }
}
