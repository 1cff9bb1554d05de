using ModelDsl;

namespace ModelDsl.Examples
{
    /// <summary>
    /// KjvGpt with each feed-forward replaced by 4 experts of half its width, each token routed to 2 of them (Mixtral's
    /// top-2, every layer). A token still passes through 2 x 256 = 512 hidden units per layer, as in KjvGpt's one
    /// 512-wide MLP, so both models spend the same parameters and FLOPs per token; the experts hold twice the
    /// feed-forward weights between them.
    /// </summary>
    [Decoder(Vocab = 64, Context = 128, Hidden = 128, Heads = 4, Layers = 4)]
    [FeedForward(Inner = 256, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
    [MixtureOfExperts(Experts = 4, TopK = 2)]
    public partial record KjvMoeGpt;
}
