using System.Collections.Immutable;
using System.Linq;

namespace ModelDsl.Generators.Spec
{
    /// <summary>How an argument's value is written.</summary>
    internal enum ArgumentKind { Int, Double, Bool, Enum }

    /// <summary>
    /// One argument of a DSL attribute: its name, its default (null when the argument is required or its default is
    /// derived from other arguments), the default as <c>docs/dsl.md</c> states it, and what it means.
    /// </summary>
    internal sealed record DslArgument(string Attribute, string Name, ArgumentKind Kind, object? Default, string DefaultText, string Meaning)
    {
        /// <summary>Written as <see cref="DefaultText"/> when a family attribute needs the argument.</summary>
        public const string RequiredText = "required";

        public bool IsRequired => DefaultText == RequiredText;
    }

    /// <summary>
    /// The DSL's attributes and arguments, written once: the parser reads arguments by these names, the validator
    /// reports findings at them, the code fixes rewrite them, and a test holds <c>docs/dsl.md</c> and the attribute
    /// classes' defaults to this table.
    /// </summary>
    internal static class DslGrammar
    {
        public const string Namespace = "ModelDsl";

        public const string Decoder = "Decoder";
        public const string Encoder = "Encoder";
        public const string EncoderDecoder = "EncoderDecoder";
        public const string VisionEncoder = "VisionEncoder";
        public const string Attention = "Attention";
        public const string FeedForward = "FeedForward";
        public const string LearnedPositions = "LearnedPositions";
        public const string SinusoidalPositions = "SinusoidalPositions";
        public const string RotaryPositions = "RotaryPositions";
        public const string RelativePositions = "RelativePositions";
        public const string PreNorm = "PreNorm";
        public const string PostNorm = "PostNorm";
        public const string TiedEmbeddings = "TiedEmbeddings";
        public const string Dropout = "Dropout";
        public const string SegmentEmbeddings = "SegmentEmbeddings";
        public const string ClassificationHead = "ClassificationHead";
        public const string MixtureOfExperts = "MixtureOfExperts";
        public const string Lora = "Lora";

        /// <summary>Argument names. An argument's meaning depends on its attribute only where the table says so.</summary>
        public static class Args
        {
            public const string Vocab = "Vocab";
            public const string Context = "Context";
            public const string Hidden = "Hidden";
            public const string Heads = "Heads";
            public const string Layers = "Layers";
            public const string EncoderLayers = "EncoderLayers";
            public const string DecoderLayers = "DecoderLayers";
            public const string ImageSize = "ImageSize";
            public const string PatchSize = "PatchSize";
            public const string Channels = "Channels";
            public const string Classes = "Classes";
            public const string KvHeads = "KvHeads";
            public const string HeadDim = "HeadDim";
            public const string Window = "Window";
            public const string Bias = "Bias";
            public const string Inner = "Inner";
            public const string Activation = "Activation";
            public const string Base = "Base";
            public const string Buckets = "Buckets";
            public const string MaxDistance = "MaxDistance";
            public const string Kind = "Kind";
            public const string Epsilon = "Epsilon";
            public const string Rate = "Rate";
            public const string Types = "Types";
            public const string Experts = "Experts";
            public const string TopK = "TopK";
            public const string Every = "Every";
            public const string AuxLossWeight = "AuxLossWeight";
            public const string ZLossWeight = "ZLossWeight";
            public const string Rank = "Rank";
            public const string Alpha = "Alpha";
            public const string Targets = "Targets";
        }

        public static readonly ImmutableArray<string> Families = ImmutableArray.Create(Decoder, Encoder, EncoderDecoder, VisionEncoder);

        public static readonly ImmutableArray<string> PositionAttributes =
            ImmutableArray.Create(LearnedPositions, SinusoidalPositions, RotaryPositions, RelativePositions);

        public static readonly ImmutableArray<string> All = ImmutableArray.Create(
            Decoder, Encoder, EncoderDecoder, VisionEncoder, Attention, FeedForward, LearnedPositions,
            SinusoidalPositions, RotaryPositions, RelativePositions, PreNorm, PostNorm, TiedEmbeddings, Dropout,
            SegmentEmbeddings, ClassificationHead, MixtureOfExperts, Lora);

        private const string Req = DslArgument.RequiredText;

        public static readonly ImmutableArray<DslArgument> Arguments = ImmutableArray.Create(
            Family(Decoder, Args.Vocab, "the number of token ids (rows of the embedding)"),
            Family(Decoder, Args.Context, "the longest sequence the model accepts"),
            Family(Decoder, Args.Hidden, "the model width (d_model)"),
            Family(Decoder, Args.Heads, "the number of attention heads"),
            Family(Decoder, Args.Layers, "the number of decoder blocks"),

            Family(Encoder, Args.Vocab, "the number of token ids (rows of the embedding)"),
            Family(Encoder, Args.Context, "the longest sequence the model accepts"),
            Family(Encoder, Args.Hidden, "the model width (d_model)"),
            Family(Encoder, Args.Heads, "the number of attention heads"),
            Family(Encoder, Args.Layers, "the number of encoder blocks"),

            Family(EncoderDecoder, Args.Vocab, "the number of token ids (shared by encoder, decoder and LM head)"),
            Family(EncoderDecoder, Args.Context, "the longest input and output sequence"),
            Family(EncoderDecoder, Args.Hidden, "the model width (d_model)"),
            Family(EncoderDecoder, Args.Heads, "the number of attention heads"),
            Family(EncoderDecoder, Args.EncoderLayers, "the number of encoder blocks"),
            Family(EncoderDecoder, Args.DecoderLayers, "the number of decoder blocks; an encoder-decoder model needs a decoder"),

            Family(VisionEncoder, Args.ImageSize, "the side of the input image in pixels"),
            Family(VisionEncoder, Args.PatchSize, "the side of a patch in pixels"),
            Family(VisionEncoder, Args.Channels, "the number of input channels (3 for RGB)"),
            Family(VisionEncoder, Args.Hidden, "the model width (d_model)"),
            Family(VisionEncoder, Args.Heads, "the number of attention heads"),
            Family(VisionEncoder, Args.Layers, "the number of encoder blocks"),
            Family(VisionEncoder, Args.Classes, "the number of classes of the classification head"),

            new DslArgument(Attention, Args.KvHeads, ArgumentKind.Int, null, "Heads", "key/value heads; fewer than Heads is grouped-query attention, 1 is multi-query"),
            new DslArgument(Attention, Args.HeadDim, ArgumentKind.Int, null, "Hidden / Heads", "the per-head width (T5's d_kv)"),
            new DslArgument(Attention, Args.Window, ArgumentKind.Int, null, "none", "sliding-window attention: each query sees at most this many positions"),
            new DslArgument(Attention, Args.Bias, ArgumentKind.Bool, true, "true", "whether the attention projections have biases"),

            new DslArgument(FeedForward, Args.Inner, ArgumentKind.Int, null, "4 x Hidden", "the inner width (d_ff)"),
            new DslArgument(FeedForward, Args.Activation, ArgumentKind.Enum, (int)Spec.Activation.Gelu, "Gelu", "the non-linearity"),
            new DslArgument(FeedForward, Args.Bias, ArgumentKind.Bool, true, "true", "whether the feed-forward projections have biases"),

            new DslArgument(RotaryPositions, Args.Base, ArgumentKind.Double, 10000.0, "10000", "the rotary frequency base (theta)"),
            new DslArgument(RelativePositions, Args.Buckets, ArgumentKind.Int, 32, "32", "the number of relative position buckets"),
            new DslArgument(RelativePositions, Args.MaxDistance, ArgumentKind.Int, 128, "128", "the distance beyond which offsets share the last bucket"),

            new DslArgument(PreNorm, Args.Kind, ArgumentKind.Enum, (int)NormKind.LayerNorm, "LayerNorm", "LayerNorm or RmsNorm"),
            new DslArgument(PreNorm, Args.Epsilon, ArgumentKind.Double, 1e-5, "1e-5", "the epsilon added to the variance"),
            new DslArgument(PostNorm, Args.Kind, ArgumentKind.Enum, (int)NormKind.LayerNorm, "LayerNorm", "LayerNorm or RmsNorm"),
            new DslArgument(PostNorm, Args.Epsilon, ArgumentKind.Double, 1e-5, "1e-5", "the epsilon added to the variance"),

            new DslArgument(Dropout, Args.Rate, ArgumentKind.Double, null, Req, "the drop probability in [0, 1)"),
            new DslArgument(SegmentEmbeddings, Args.Types, ArgumentKind.Int, 2, "2", "the number of segment (token-type) ids"),
            new DslArgument(ClassificationHead, Args.Classes, ArgumentKind.Int, null, Req, "the number of classes of the classification head"),

            new DslArgument(MixtureOfExperts, Args.Experts, ArgumentKind.Int, null, Req, "the number of experts per mixture-of-experts layer"),
            new DslArgument(MixtureOfExperts, Args.TopK, ArgumentKind.Int, 2, "2", "the experts each token is routed to"),
            new DslArgument(MixtureOfExperts, Args.Every, ArgumentKind.Int, 1, "1", "every n-th block is a mixture-of-experts block"),
            new DslArgument(MixtureOfExperts, Args.AuxLossWeight, ArgumentKind.Double, 0.01, "0.01", "the weight of the load-balancing loss"),
            new DslArgument(MixtureOfExperts, Args.ZLossWeight, ArgumentKind.Double, 0.0, "0", "the weight of the router z-loss"),

            new DslArgument(Lora, Args.Rank, ArgumentKind.Int, 8, "8", "the adapter rank r"),
            new DslArgument(Lora, Args.Alpha, ArgumentKind.Double, 16.0, "16", "the scaling numerator: updates are scaled by Alpha / Rank"),
            new DslArgument(Lora, Args.Targets, ArgumentKind.Enum, (int)(LoraTargets.Query | LoraTargets.Value), "Query | Value", "the projections that get adapters"));

        public static string MetadataName(string attribute) => Namespace + "." + attribute + "Attribute";

        /// <summary>The table's entry for an argument of an attribute.</summary>
        public static DslArgument Argument(string attribute, string name)
            => Arguments.First(a => a.Attribute == attribute && a.Name == name);

        /// <summary>The arguments a family attribute requires, in the table's order.</summary>
        public static ImmutableArray<DslArgument> RequiredBy(string family)
            => Arguments.Where(a => a.Attribute == family && a.IsRequired).ToImmutableArray();

        /// <summary>The default of an optional argument with a constant default.</summary>
        public static T DefaultOf<T>(string attribute, string name) => (T)Argument(attribute, name).Default!;

        private static DslArgument Family(string family, string name, string meaning)
            => new(family, name, ArgumentKind.Int, null, Req, meaning);
    }
}
