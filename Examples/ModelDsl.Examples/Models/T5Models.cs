using ModelDsl;

namespace ModelDsl.Examples
{
    /// <summary>
    /// A small T5 in the original (v1.0) style: RMS norm, relative position buckets, ReLU feed-forward, no biases, the
    /// LM head tied to the shared embedding. Word-level: 2,046 KJV words and T5's pad and end ids; fragments of at most
    /// 8 words, so a context of 16 holds any source and any target with its end token.
    /// </summary>
    [EncoderDecoder(Vocab = 2048, Context = 16, Hidden = 128, Heads = 4, EncoderLayers = 3, DecoderLayers = 3)]
    [Attention(Bias = false)]
    [FeedForward(Inner = 512, Activation = Activation.Relu, Bias = false)]
    [RelativePositions(Buckets = 32, MaxDistance = 64), TiedEmbeddings]
    public partial record ReverseWordsT5;
}
