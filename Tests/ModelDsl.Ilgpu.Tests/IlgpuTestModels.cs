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
}
