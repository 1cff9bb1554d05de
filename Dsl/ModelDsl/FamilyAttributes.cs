using System;

namespace ModelDsl
{
    /// <summary>
    /// A decoder-only language model (GPT-2, LLaMA, Mixtral): token embeddings, causal self-attention blocks,
    /// a final norm and an LM head. Put it on a <c>partial record</c>; the build generates the model.
    /// </summary>
    /// <example><code>
    /// [Decoder(Vocab = 50257, Context = 1024, Hidden = 768, Heads = 12, Layers = 12)]
    /// [FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]
    /// [LearnedPositions, PreNorm, TiedEmbeddings]
    /// public partial record Gpt2Small;
    /// </code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class DecoderAttribute : Attribute
    {
        /// <summary>Number of token ids (the embedding rows and LM-head columns).</summary>
        public int Vocab { get; set; }
        /// <summary>Longest sequence the model accepts (learned positions need one row each).</summary>
        public int Context { get; set; }
        /// <summary>Model width (d_model, n_embd).</summary>
        public int Hidden { get; set; }
        /// <summary>Attention (query) heads per layer.</summary>
        public int Heads { get; set; }
        /// <summary>Number of transformer blocks.</summary>
        public int Layers { get; set; }
    }

    /// <summary>
    /// A bidirectional encoder (BERT, RoBERTa): token, position and optional segment embeddings, encoder blocks
    /// with a padding mask, and an MLM head and/or a pooled classification head.
    /// </summary>
    /// <example><code>
    /// [Encoder(Vocab = 30522, Context = 512, Hidden = 768, Heads = 12, Layers = 12)]
    /// [FeedForward(Inner = 3072, Activation = Activation.Gelu)]
    /// [LearnedPositions, SegmentEmbeddings(Types = 2), PostNorm(Epsilon = 1e-12), TiedEmbeddings]
    /// public partial record BertBase;
    /// </code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class EncoderAttribute : Attribute
    {
        /// <summary>Number of token ids.</summary>
        public int Vocab { get; set; }
        /// <summary>Longest sequence the model accepts.</summary>
        public int Context { get; set; }
        /// <summary>Model width.</summary>
        public int Hidden { get; set; }
        /// <summary>Attention heads per layer.</summary>
        public int Heads { get; set; }
        /// <summary>Number of encoder blocks.</summary>
        public int Layers { get; set; }
    }

    /// <summary>
    /// An encoder-decoder model (T5): a shared embedding, a bidirectional encoder and a causal decoder with
    /// cross-attention. The head dimension (d_kv) may differ from Hidden / Heads: set it with
    /// <see cref="AttentionAttribute.HeadDim"/>.
    /// </summary>
    /// <example><code>
    /// [EncoderDecoder(Vocab = 32128, Context = 512, Hidden = 512, Heads = 8, EncoderLayers = 6, DecoderLayers = 6)]
    /// [Attention(HeadDim = 64)]
    /// [FeedForward(Inner = 2048, Activation = Activation.Relu)]
    /// [RelativePositions(Buckets = 32, MaxDistance = 128), PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-6)]
    /// public partial record T5Small;
    /// </code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class EncoderDecoderAttribute : Attribute
    {
        /// <summary>Number of token ids (shared by encoder, decoder and LM head).</summary>
        public int Vocab { get; set; }
        /// <summary>Longest input and output sequence.</summary>
        public int Context { get; set; }
        /// <summary>Model width (d_model).</summary>
        public int Hidden { get; set; }
        /// <summary>Attention heads per layer.</summary>
        public int Heads { get; set; }
        /// <summary>Number of encoder blocks.</summary>
        public int EncoderLayers { get; set; }
        /// <summary>Number of decoder blocks.</summary>
        public int DecoderLayers { get; set; }
    }

    /// <summary>
    /// A vision transformer (ViT): non-overlapping patches projected to Hidden, a class token, learned
    /// positions, an encoder and a classification head on the class token.
    /// </summary>
    /// <example><code>
    /// [VisionEncoder(ImageSize = 224, PatchSize = 16, Channels = 3, Hidden = 768, Heads = 12, Layers = 12, Classes = 1000)]
    /// [FeedForward(Inner = 3072, Activation = Activation.Gelu)]
    /// [LearnedPositions, PreNorm(Epsilon = 1e-12)]
    /// public partial record VitBase16;
    /// </code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class VisionEncoderAttribute : Attribute
    {
        /// <summary>Side of the (square) input image in pixels.</summary>
        public int ImageSize { get; set; }
        /// <summary>Side of a (square) patch in pixels; must divide ImageSize.</summary>
        public int PatchSize { get; set; }
        /// <summary>Input channels (3 for RGB, 1 for greyscale).</summary>
        public int Channels { get; set; }
        /// <summary>Model width.</summary>
        public int Hidden { get; set; }
        /// <summary>Attention heads per layer.</summary>
        public int Heads { get; set; }
        /// <summary>Number of encoder blocks.</summary>
        public int Layers { get; set; }
        /// <summary>Classes of the classification head.</summary>
        public int Classes { get; set; }
    }
}
