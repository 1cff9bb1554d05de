using ModelDsl;

namespace ModelDsl.Examples
{
    /// <summary>
    /// A character-level GPT sized to train in minutes on two CPU cores: GPT-2's architecture (learned positions,
    /// pre-norm blocks, GELU-tanh MLP, tied LM head) at 1/6 of GPT-2 small's width and 1/3 of its depth.
    /// </summary>
    [Decoder(Vocab = 64, Context = 128, Hidden = 128, Heads = 4, Layers = 4)]
    [FeedForward(Inner = 512, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
    public partial record KjvGpt;

    /// <summary>GPT-2 small (124M) exactly as Hugging Face's "gpt2" checkpoint lays it out.</summary>
    [Decoder(Vocab = 50257, Context = 1024, Hidden = 768, Heads = 12, Layers = 12)]
    [FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm, TiedEmbeddings, Dropout(0.1)]
    public partial record Gpt2Small;

    /// <summary>
    /// KjvGpt's size in Mistral's layout (Llama's with a sliding window): rotary positions, RMSNorm, SwiGLU (the inner
    /// width keeps the parameters near KjvGpt's), 4 query heads over 2 key/value heads, no biases, an untied head. Its
    /// generated code for both backends is in the reviewed snapshots; `inspect` prints its card beside KjvGpt's.
    /// </summary>
    [Decoder(Vocab = 64, Context = 128, Hidden = 128, Heads = 4, Layers = 4)]
    [Attention(KvHeads = 2, Window = 64, Bias = false)]
    [FeedForward(Inner = 352, Activation = Activation.SwiGlu, Bias = false)]
    [RotaryPositions, PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-5)]
    public partial record KjvMistral;
}
