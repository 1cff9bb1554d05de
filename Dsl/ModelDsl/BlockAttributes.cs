using System;

namespace ModelDsl
{
    /// <summary>
    /// Attention options. Without it: multi-head attention, HeadDim = Hidden / Heads, biases on, full context.
    /// Every size written must be at least 1 (writing 0 is error MDSL0005); leave an argument out for its default.
    /// </summary>
    /// <example><code>[Attention(KvHeads = 8)]        // grouped-query attention (GQA); KvHeads = 1 is MQA</code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class AttentionAttribute : Attribute
    {
        /// <summary>Key/value heads; must divide Heads. Not set: Heads (plain multi-head attention); fewer is GQA, 1 is MQA.</summary>
        public int KvHeads { get; set; }
        /// <summary>Per-head width. Not set: Hidden / Heads. Only encoder-decoder models may pick another value (T5's d_kv).</summary>
        public int HeadDim { get; set; }
        /// <summary>Sliding-window (local) attention: each query sees at most this many positions, itself included. Not set: the whole context.</summary>
        public int Window { get; set; }
        /// <summary>Whether the q/k/v/output projections have biases (GPT-2, BERT: true; T5, LLaMA: false).</summary>
        public bool Bias { get; set; } = true;
    }

    /// <summary>The position-wise feed-forward network of every block.</summary>
    /// <example><code>[FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]</code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class FeedForwardAttribute : Attribute
    {
        /// <summary>Inner width (d_ff, n_inner). Not set: 4 x Hidden.</summary>
        public int Inner { get; set; }
        /// <summary>The non-linearity; the gated ones (SwiGlu, GeGlu) add a second input projection.</summary>
        public Activation Activation { get; set; } = Activation.Gelu;
        /// <summary>Whether the projections have biases.</summary>
        public bool Bias { get; set; } = true;
    }

    /// <summary>Learned absolute position embeddings, one row per position up to Context (GPT-2, BERT, ViT).</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class LearnedPositionsAttribute : Attribute { }

    /// <summary>Fixed sinusoidal position encodings added to the embeddings (the original Transformer).</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class SinusoidalPositionsAttribute : Attribute { }

    /// <summary>Rotary position embeddings applied to queries and keys (GPT-NeoX, LLaMA). Needs an even head dim.</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class RotaryPositionsAttribute : Attribute
    {
        /// <summary>The frequency base (theta).</summary>
        public double Base { get; set; } = 10000.0;
    }

    /// <summary>T5's bucketed relative position bias, bidirectional in encoders and causal in decoders.</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class RelativePositionsAttribute : Attribute
    {
        /// <summary>Number of buckets.</summary>
        public int Buckets { get; set; } = 32;
        /// <summary>Distance beyond which all offsets share the last bucket.</summary>
        public int MaxDistance { get; set; } = 128;
    }

    /// <summary>Normalise the input of each sub-block (GPT-2, T5, ViT), plus a final norm.</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class PreNormAttribute : Attribute
    {
        /// <summary>LayerNorm or RmsNorm.</summary>
        public NormKind Kind { get; set; } = NormKind.LayerNorm;
        /// <summary>The epsilon added to the variance; must be positive.</summary>
        public double Epsilon { get; set; } = 1e-5;
    }

    /// <summary>Normalise after each residual add (original Transformer, BERT).</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class PostNormAttribute : Attribute
    {
        /// <summary>LayerNorm or RmsNorm.</summary>
        public NormKind Kind { get; set; } = NormKind.LayerNorm;
        /// <summary>The epsilon added to the variance; must be positive.</summary>
        public double Epsilon { get; set; } = 1e-5;
    }

    /// <summary>The LM head reuses the token-embedding matrix (GPT-2, BERT's MLM head, T5 v1.0).</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class TiedEmbeddingsAttribute : Attribute { }

    /// <summary>Dropout on embeddings, attention probabilities and residual branches, during training only.</summary>
    /// <example><code>[Dropout(0.1)]</code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class DropoutAttribute : Attribute
    {
        /// <summary>Creates the attribute.</summary>
        /// <param name="rate">Drop probability in [0, 1).</param>
        public DropoutAttribute(double rate) => Rate = rate;
        /// <summary>Drop probability in [0, 1).</summary>
        public double Rate { get; }
    }

    /// <summary>BERT's token-type (segment) embeddings.</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class SegmentEmbeddingsAttribute : Attribute
    {
        /// <summary>Number of segment types.</summary>
        public int Types { get; set; } = 2;
    }

    /// <summary>A pooled classification head on the first token (BERT's pooler + classifier).</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class ClassificationHeadAttribute : Attribute
    {
        /// <summary>Number of classes.</summary>
        public int Classes { get; set; }
    }

    /// <summary>Sparse mixture-of-experts feed-forward with a top-k router and a load-balancing loss.</summary>
    /// <example><code>[MixtureOfExperts(Experts = 8, TopK = 2)]                 // Mixtral: every layer
    /// [MixtureOfExperts(Experts = 128, TopK = 1, Every = 2)]     // Switch: every second layer</code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class MixtureOfExpertsAttribute : Attribute
    {
        /// <summary>Experts per MoE layer.</summary>
        public int Experts { get; set; }
        /// <summary>Experts each token is routed to (1 or 2).</summary>
        public int TopK { get; set; } = 2;
        /// <summary>Every n-th block is an MoE block (1 = all).</summary>
        public int Every { get; set; } = 1;
        /// <summary>Weight of the load-balancing auxiliary loss (Switch Transformers; Hugging Face's router_aux_loss_coef).</summary>
        public double AuxLossWeight { get; set; } = 0.01;
        /// <summary>Weight of the router z-loss, mean(logsumexp(router logits)^2) (ST-MoE); 0 (the default) leaves it out.</summary>
        public double ZLossWeight { get; set; }
    }

    /// <summary>Low-rank adapters on chosen projections; the base weights are frozen when adapters are trained.</summary>
    /// <example><code>[Lora(Rank = 8, Alpha = 16, Targets = LoraTargets.Query | LoraTargets.Value)]</code></example>
    [AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
    public sealed class LoraAttribute : Attribute
    {
        /// <summary>Adapter rank r; must not exceed the projection's smaller side.</summary>
        public int Rank { get; set; } = 8;
        /// <summary>Scaling numerator: the update is scaled by Alpha / Rank.</summary>
        public double Alpha { get; set; } = 16;
        /// <summary>Projections that get adapters.</summary>
        public LoraTargets Targets { get; set; } = LoraTargets.Query | LoraTargets.Value;
    }
}
