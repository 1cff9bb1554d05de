using ModelDsl;

namespace ModelDsl.Examples
{
    /// <summary>
    /// A character-level BERT for masked-language-model pre-training on the KJV excerpt: BERT's architecture (learned
    /// positions, segment embeddings, post-norm encoder, exact GELU, MLM head tied to the word embedding) at a size that
    /// gets past the masked LM's long first plateau (~700 steps, while it learns to attend to neighbouring characters)
    /// within two minutes on two CPU cores. Vocab = 4 special tokens + the text's 62 characters.
    /// </summary>
    [Encoder(Vocab = 66, Context = 64, Hidden = 64, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 256)]
    [SegmentEmbeddings, PostNorm(Epsilon = 1e-12), TiedEmbeddings]
    public partial record KjvBert;

    /// <summary>
    /// The same encoder with BERT's pooler and a classifier over the eight books of the excerpt: fine-tuned from a
    /// <see cref="KjvBert"/> checkpoint (LoadPretrained loads the shared encoder) or trained from scratch.
    /// </summary>
    [Encoder(Vocab = 66, Context = 64, Hidden = 64, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 256)]
    [SegmentEmbeddings, PostNorm(Epsilon = 1e-12), ClassificationHead(Classes = 8)]
    public partial record KjvBertBooks;
}
