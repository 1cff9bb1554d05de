using ModelDsl;

namespace ModelDsl.Ilgpu.Bench
{
    /// <summary>GPT-2 small (124M) without dropout: what a training-step benchmark measures (and what llm.c times).</summary>
    [Decoder(Vocab = 50257, Context = 1024, Hidden = 768, Heads = 12, Layers = 12)]
    [FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm, TiedEmbeddings]
    public partial record Gpt2SmallBench;
}
