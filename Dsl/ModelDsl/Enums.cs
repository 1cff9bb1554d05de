using System;

namespace ModelDsl
{
    /// <summary>The feed-forward non-linearity. Gated variants (SwiGlu, GeGlu) use two input projections.</summary>
    public enum Activation
    {
        /// <summary>Exact GELU (erf), as in BERT and ViT.</summary>
        Gelu = 0,
        /// <summary>GELU with the tanh approximation, as in GPT-2 ("gelu_new").</summary>
        GeluTanh = 1,
        /// <summary>ReLU, as in the original Transformer and T5 v1.0.</summary>
        Relu = 2,
        /// <summary>SiLU-gated linear unit (LLaMA, Mixtral): W2(silu(W1 x) * W3 x).</summary>
        SwiGlu = 3,
        /// <summary>GELU-gated linear unit: W2(gelu_tanh(W1 x) * W3 x), as T5 v1.1's "gated-gelu" (gelu_new, the tanh approximation).</summary>
        GeGlu = 4,
    }

    /// <summary>The normalisation layer used around each sub-block.</summary>
    public enum NormKind
    {
        /// <summary>LayerNorm with weight and bias.</summary>
        LayerNorm = 0,
        /// <summary>Root-mean-square norm with weight only (T5, LLaMA).</summary>
        RmsNorm = 1,
    }

    /// <summary>Projections a LoRA adapter can attach to. Combine with <c>|</c>.</summary>
    [Flags]
    public enum LoraTargets
    {
        /// <summary>No projection.</summary>
        None = 0,
        /// <summary>The query projection.</summary>
        Query = 1,
        /// <summary>The key projection.</summary>
        Key = 2,
        /// <summary>The value projection.</summary>
        Value = 4,
        /// <summary>The attention output projection.</summary>
        Output = 8,
        /// <summary>The feed-forward projections.</summary>
        FeedForward = 16,
    }
}
