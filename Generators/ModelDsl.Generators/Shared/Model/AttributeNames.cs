namespace ModelDsl.Generators.Model
{
    /// <summary>Simple names (without "Attribute") of the DSL's attributes, and their metadata names.</summary>
    internal static class AttributeNames
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

        public static readonly string[] Families = { Decoder, Encoder, EncoderDecoder, VisionEncoder };

        public static readonly string[] All =
        {
            Decoder, Encoder, EncoderDecoder, VisionEncoder, Attention, FeedForward, LearnedPositions,
            SinusoidalPositions, RotaryPositions, RelativePositions, PreNorm, PostNorm, TiedEmbeddings, Dropout,
            SegmentEmbeddings, ClassificationHead, MixtureOfExperts, Lora,
        };

        public static string MetadataName(string simpleName) => Namespace + "." + simpleName + "Attribute";
    }
}
