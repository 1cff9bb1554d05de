using ModelDsl;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>GPT-2's architecture at a size the CPU accelerator runs in well under a second per step.</summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 2)]
    [FeedForward(Inner = 32, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
    public partial record TinyIlgpuGpt;

    /// <summary>
    /// Mistral's architecture at the same size: rotary positions, grouped-query attention (2 key/value heads for 4
    /// query heads), a sliding window of 3 (shorter than the tests' sequences), SwiGLU, RMSNorm, no biases, an untied
    /// head; without the window it is Llama's. One model for both keeps the emulated tests within CI's budget.
    /// </summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 4, Layers = 2)]
    [Attention(KvHeads = 2, Window = 3, Bias = false)]
    [FeedForward(Inner = 24, Activation = Activation.SwiGlu, Bias = false)]
    [RotaryPositions(Base = 500), PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-6)]
    public partial record TinyIlgpuMistral;

    /// <summary>The original Transformer's decoder shape: fixed sinusoidal positions, post-norm blocks, ReLU, an untied head.</summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 2)]
    [FeedForward(Inner = 32, Activation = Activation.Relu)]
    [SinusoidalPositions, PostNorm(Epsilon = 1e-5)]
    public partial record TinyIlgpuSinusoidal;

    /// <summary>
    /// BERT's masked language model at the same size: learned positions, segment embeddings, the embedding LayerNorm,
    /// post-norm encoder layers with bidirectional attention under a padding mask, GELU (erf), the MLM head (dense,
    /// GELU, LayerNorm, the tied decoder and its own bias). One layer: the emulator's time per step is launches, and
    /// the stack's layer-to-layer gradient is the decoders' (two layers each).
    /// </summary>
    [Encoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 1)]
    [FeedForward(Inner = 32)]
    [SegmentEmbeddings, PostNorm(Epsilon = 1e-12), TiedEmbeddings]
    public partial record TinyIlgpuBert;

    /// <summary>
    /// BERT's sequence classifier in a pre-norm variant (the final LayerNorm, as ViT's encoder has it): the pooler
    /// (dense + tanh on the first token) and the classifier over 3 classes. One layer.
    /// </summary>
    [Encoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 1)]
    [FeedForward(Inner = 32)]
    [PreNorm(Epsilon = 1e-6), ClassificationHead(Classes = 3)]
    public partial record TinyIlgpuClassifier;

    /// <summary>ViT's image classifier: 8 x 8 images of 2 channels in 4 x 4 patches (4 patches and the class token), pre-norm, GELU; one layer.</summary>
    [VisionEncoder(ImageSize = 8, PatchSize = 4, Channels = 2, Hidden = 16, Heads = 2, Layers = 1, Classes = 3)]
    [FeedForward(Inner = 32)]
    public partial record TinyIlgpuVit;

    /// <summary>
    /// T5's encoder-decoder: relative position bias (8 buckets, bidirectional in the encoder and causal in the decoder,
    /// computed once per stack), T5's RMS norm, ReLU, no biases, a head dimension (6) independent of the width, unscaled
    /// attention, cross-attention over a padded source, the tied head rescaled by Hidden^-0.5.
    /// </summary>
    [EncoderDecoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, EncoderLayers = 1, DecoderLayers = 2)]
    [Attention(HeadDim = 6, Bias = false)]
    [FeedForward(Inner = 32, Activation = Activation.Relu, Bias = false)]
    [RelativePositions(Buckets = 8, MaxDistance = 12), TiedEmbeddings]
    public partial record TinyIlgpuT5;

    /// <summary>GPT-2's layout with dropout (0.1) on the embeddings, the residual branches and the attention probabilities; one layer.</summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 1)]
    [FeedForward(Inner = 32, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings, Dropout(0.1)]
    public partial record TinyIlgpuGptDropout;

    /// <summary>
    /// Mixtral's architecture at the Mistral test model's size: every layer a sparse mixture of 4 SwiGLU experts
    /// (nn.Linear w1, w3, w2 under Mixtral's names), each token routed to its top 2 with renormalised weights. The
    /// load-balancing and z-loss weights are far above Mixtral's 0.02 and 0 so that their gradients are large enough
    /// to be checked at float32's precision next to the task loss's.
    /// </summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 4, Layers = 2)]
    [Attention(KvHeads = 2, Bias = false)]
    [FeedForward(Inner = 24, Activation = Activation.SwiGlu, Bias = false)]
    [RotaryPositions(Base = 500), PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-6)]
    [MixtureOfExperts(Experts = 4, TopK = 2, AuxLossWeight = 0.5, ZLossWeight = 0.05)]
    public partial record TinyIlgpuMixtral;

    /// <summary>
    /// A GPT-2-named mixture of experts as the examples' KjvMoeGpt has it (Conv1D experts stored [in, out], GELU-tanh),
    /// with Switch's top-1 routing (the router's probability, not renormalised) over 3 experts; one layer.
    /// </summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 1)]
    [FeedForward(Inner = 32, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
    [MixtureOfExperts(Experts = 3, TopK = 1, AuxLossWeight = 0.5)]
    public partial record TinyIlgpuMoeGpt;

    /// <summary>
    /// GPT-2's layout with LoRA adapters (rank 4, alpha 8: scale 2) on the fused c_attn and the MLP's c_fc and c_proj:
    /// adapters beside Conv1D base weights stored [in, out], under PEFT's names; one layer.
    /// </summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 1)]
    [FeedForward(Inner = 32, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
    [Lora(Rank = 4, Alpha = 8, Targets = LoraTargets.Query | LoraTargets.Value | LoraTargets.FeedForward)]
    public partial record TinyIlgpuLoraGpt;

    /// <summary>
    /// Switch Transformers' layout in a decoder: 4 layers of which every second (1 and 3) is a mixture of 2 ReLU experts
    /// with top-1 routing, the others dense, so each kind of layer keeps two copies of its buffers and the stack's layers
    /// run different bodies; the z-loss on.
    /// </summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 4)]
    [FeedForward(Inner = 16, Activation = Activation.Relu)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
    [MixtureOfExperts(Experts = 2, TopK = 1, Every = 2, AuxLossWeight = 0.5, ZLossWeight = 0.05)]
    public partial record TinyIlgpuSwitch;
}
