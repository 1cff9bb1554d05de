using ModelDsl;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>GPT-2's architecture at a size the CPU accelerator runs in well under a second per step.</summary>
    [Decoder(Vocab = 19, Context = 16, Hidden = 16, Heads = 2, Layers = 2)]
    [FeedForward(Inner = 32, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
    public partial record TinyIlgpuGpt;
}
