namespace ModelDsl.TorchSharp
{
    /// <summary>What a key/value cache keeps for one attention (mirrors the generator's IR).</summary>
    public enum AttentionCache
    {
        /// <summary>Nothing: training, encoders.</summary>
        None,
        /// <summary>Self-attention of a decoder: each pass appends its keys and values.</summary>
        Self,
        /// <summary>Cross-attention: the encoder's keys and values, computed on the first pass and reused.</summary>
        Cross,
    }

    /// <summary>The compile-time shape of one attention: generated as a constant per attention of a model.</summary>
    /// <param name="Heads">Query heads.</param>
    /// <param name="KvHeads">Key/value heads (fewer: grouped-query attention; 1: multi-query).</param>
    /// <param name="HeadDim">Width of a head.</param>
    /// <param name="Causal">Whether query i sees only keys up to its own position.</param>
    /// <param name="Window">Sliding window: each query sees itself and the Window - 1 positions before it; null: all.</param>
    /// <param name="Scaled">Whether scores are divided by sqrt(HeadDim) (T5 does not scale).</param>
    /// <param name="Dropout">Dropout on the attention probabilities, in training.</param>
    /// <param name="Cache">What the key/value cache holds for it.</param>
    public sealed record AttentionOptions(int Heads, int KvHeads, int HeadDim, bool Causal, int? Window, bool Scaled, double Dropout, AttentionCache Cache)
    {
        /// <summary>Query heads per key/value head.</summary>
        public int Groups => Heads / KvHeads;
    }
}
