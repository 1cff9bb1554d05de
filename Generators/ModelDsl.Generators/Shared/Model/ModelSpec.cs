using ModelDsl.Generators.Helpers;

namespace ModelDsl.Generators.Model
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
        public string FullName => Namespace.Length == 0 ? Name : Namespace + "." + Name;
    }

    /// <summary>
    /// Everything a declaration says, as values: no symbols, no syntax, so the pipeline can compare and cache it.
    /// Dimension fields hold what was written; 0 means "not written" where the DSL has a derived default
    /// (the Effective* members resolve those). <see cref="Attributes"/> lists the DSL attributes in source order and
    /// <see cref="WrittenArguments"/> the arguments written, as "Attribute.Argument".
    /// </summary>
    internal sealed record ModelSpec(
        TypeSpec Type,
        EquatableArray<string> Attributes,
        EquatableArray<string> WrittenArguments,
        ModelFamily Family,
        int Vocab,
        int Context,
        int Hidden,
        int Heads,
        int Layers,
        int DecoderLayers,
        int ImageSize,
        int PatchSize,
        int Channels,
        int Classes,
        int KvHeads,
        int HeadDim,
        int Window,
        bool AttentionBias,
        int Inner,
        Activation Activation,
        bool FeedForwardBias,
        PositionKind Positions,
        double RotaryBase,
        int RelativeBuckets,
        int RelativeMaxDistance,
        NormPlacement NormPlacement,
        NormKind NormKind,
        double NormEpsilon,
        bool TiedEmbeddings,
        double Dropout,
        int SegmentTypes,
        int Experts,
        int ExpertTopK,
        int ExpertEvery,
        double AuxLossWeight,
        int LoraRank,
        double LoraAlpha,
        LoraTargets LoraTargets)
    {
        public string Name => Type.Name;

        public bool Has(string attribute) => Attributes.AsImmutableArray().Contains(attribute);

        /// <summary>Whether the declaration writes <paramref name="argument"/> on <paramref name="attribute"/>.</summary>
        public bool Wrote(string attribute, string argument)
            => WrittenArguments.AsImmutableArray().Contains(attribute + "." + argument);

        /// <summary>Key/value heads: Heads unless GQA/MQA says otherwise.</summary>
        public int EffectiveKvHeads => KvHeads > 0 ? KvHeads : Heads;

        /// <summary>Per-head width: explicit, or Hidden / Heads.</summary>
        public int EffectiveHeadDim => HeadDim > 0 ? HeadDim : (Heads > 0 ? Hidden / Heads : 0);

        /// <summary>Feed-forward inner width: explicit, or 4 x Hidden.</summary>
        public int EffectiveInner => Inner > 0 ? Inner : 4 * Hidden;

        public bool IsGated => Activation is Activation.SwiGlu or Activation.GeGlu;

        /// <summary>Blocks across all stacks.</summary>
        public int TotalLayers => Layers + (Family == ModelFamily.EncoderDecoder ? DecoderLayers : 0);

        /// <summary>Patches per image side (ViT).</summary>
        public int PatchesPerSide => PatchSize > 0 ? ImageSize / PatchSize : 0;
    }
}
