using Microsoft.CodeAnalysis;

namespace ModelDsl.Generators.Validation
{
    /// <summary>
    /// Every diagnostic ModelDsl reports. IDs are stable: never reuse or renumber one (see
    /// analyzers/ModelDsl.Analyzers/AnalyzerReleases.*.md). Each has a section in docs/diagnostics.md.
    /// </summary>
    internal static class DiagnosticDescriptors
    {
        private const string Shape = "ModelDsl.Shape";
        private const string Declaration = "ModelDsl.Declaration";
        private const string Backend = "ModelDsl.Backend";
        private const string HelpBase = "https://github.com/modeldsl/modeldsl/blob/main/docs/diagnostics.md#";

        private static DiagnosticDescriptor Error(string id, string title, string message, string category = Shape)
            => new(id, title, message, category, DiagnosticSeverity.Error, isEnabledByDefault: true,
                helpLinkUri: HelpBase + id.ToLowerInvariant());

        private static DiagnosticDescriptor Warning(string id, string title, string message, string category)
            => new(id, title, message, category, DiagnosticSeverity.Warning, isEnabledByDefault: true,
                helpLinkUri: HelpBase + id.ToLowerInvariant());

        public static readonly DiagnosticDescriptor HiddenNotDivisibleByHeads = Error("MDSL0001",
            "Hidden size is not divisible by the number of heads",
            "Hidden ({0}) is not divisible by Heads ({1}); the head dimension would be {2}. Nearest valid head counts: {3}.");

        public static readonly DiagnosticDescriptor HeadDimMismatch = Error("MDSL0002",
            "Head dimension disagrees with Hidden / Heads",
            "HeadDim ({0}) must equal Hidden / Heads ({1} / {2} = {3}) in a {4} model; only encoder-decoder models (T5's d_kv) may choose another head dimension");

        public static readonly DiagnosticDescriptor KvHeadsNotDivisor = Error("MDSL0003",
            "Key/value heads do not divide the query heads",
            "KvHeads ({0}) must divide Heads ({1}) so that each key/value head serves a whole group of query heads; valid values: {2}");

        public static readonly DiagnosticDescriptor MissingArgument = Error("MDSL0004",
            "Required dimension is missing",
            "[{0}] needs {1}: {2}", Declaration);

        public static readonly DiagnosticDescriptor NonPositive = Error("MDSL0005",
            "Dimension must be positive",
            "{0} must be at least {1}, but is {2}");

        public static readonly DiagnosticDescriptor RotaryOddHeadDim = Error("MDSL0006",
            "Rotary positions need an even head dimension",
            "Rotary positions rotate pairs of channels, so the head dimension must be even, but it is {0}");

        public static readonly DiagnosticDescriptor ImageNotDivisibleByPatch = Error("MDSL0007",
            "Image size is not divisible by the patch size",
            "ImageSize ({0}) is not divisible by PatchSize ({1}); {2} per side would be left over. Valid patch sizes: {3}.");

        public static readonly DiagnosticDescriptor ExpertTopKOutOfRange = Error("MDSL0008",
            "Router top-k out of range",
            "TopK ({0}) must be between 1 and Experts ({1})");

        public static readonly DiagnosticDescriptor MoeEveryOutOfRange = Error("MDSL0009",
            "Mixture-of-experts layer interval out of range",
            "Every ({0}) must be between 1 and the number of layers ({1}), or no block would be a mixture-of-experts block");

        public static readonly DiagnosticDescriptor RelativeBucketsInvalid = Error("MDSL0010",
            "Relative position buckets are not sane",
            "{0}");

        public static readonly DiagnosticDescriptor LoraRankTooLarge = Error("MDSL0011",
            "LoRA rank exceeds the projection",
            "LoRA Rank ({0}) must be between 1 and {1}, the smaller side of the smallest adapted projection ({2})");

        public static readonly DiagnosticDescriptor DropoutOutOfRange = Error("MDSL0012",
            "Dropout rate outside [0, 1)",
            "Dropout rate must be in [0, 1), but is {0}");

        public static readonly DiagnosticDescriptor EpsilonNotPositive = Error("MDSL0013",
            "Norm epsilon must be positive",
            "Epsilon must be positive and finite, but is {0}");

        public static readonly DiagnosticDescriptor NotApplicable = Error("MDSL0014",
            "Attribute does not apply to this model family",
            "[{0}] does not apply to a {1} model: {2}", Declaration);

        public static readonly DiagnosticDescriptor MissingFamily = Error("MDSL0015",
            "Model has no family attribute",
            "'{0}' uses ModelDsl attributes but no model family; add one of [Decoder], [Encoder], [EncoderDecoder] or [VisionEncoder]", Declaration);

        public static readonly DiagnosticDescriptor Conflicting = Error("MDSL0016",
            "Conflicting attributes",
            "[{0}] conflicts with [{1}]: {2}", Declaration);

        public static readonly DiagnosticDescriptor NotPartial = Error("MDSL0017",
            "Model type must be partial",
            "'{0}' must be a non-generic partial class or record (and so must every type containing it) so the generator can add the model to it", Declaration);

        public static readonly DiagnosticDescriptor ValueOutOfRange = Error("MDSL0018",
            "Value out of range",
            "{0} must be {1}, but is {2}");

        public static readonly DiagnosticDescriptor WindowCoversContext = Warning("MDSL0019",
            "Attention window covers the whole context",
            "Window ({0}) is at least Context ({1}), so the attention is not local; remove Window or make it smaller", Declaration);

        public static readonly DiagnosticDescriptor ReservedName = Error("MDSL0020",
            "Model name is taken by a generated member",
            "'{0}' cannot be this model's name: {1}; choose another name", Declaration);

        public static readonly DiagnosticDescriptor NotYetGenerated = Warning("MDSL0100",
            "Backend does not generate this feature yet",
            "The {0} backend does not generate {1} yet, so '{2}' gets no {0} code; the declaration itself is valid", Backend);

        public static readonly DiagnosticDescriptor[] All =
        {
            HiddenNotDivisibleByHeads, HeadDimMismatch, KvHeadsNotDivisor, MissingArgument, NonPositive,
            RotaryOddHeadDim, ImageNotDivisibleByPatch, ExpertTopKOutOfRange, MoeEveryOutOfRange,
            RelativeBucketsInvalid, LoraRankTooLarge, DropoutOutOfRange, EpsilonNotPositive, NotApplicable,
            MissingFamily, Conflicting, NotPartial, ValueOutOfRange, WindowCoversContext, ReservedName, NotYetGenerated,
        };
    }
}
