using System.Collections.Generic;
using System.Collections.Immutable;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir.Layouts
{
    /// <summary>
    /// Hugging Face Llama, Mistral and Mixtral ("model.layers.{layer}.self_attn.q_proj", nn.Linear weights [out, in],
    /// no fusion). Chosen for a decoder shaped like them: rotary positions, RMSNorm or a gated feed-forward. The three
    /// share names; Mistral adds a sliding window, Mixtral replaces "mlp" by "block_sparse_moe" (w1 gate, w3 up, w2
    /// down). A learned position table, which none of them has, is "model.embed_positions" (ModelDsl's name).
    /// </summary>
    internal sealed class LlamaLayout : CheckpointLayout
    {
        private static readonly LlamaLayout Llama = new("Llama");
        private static readonly LlamaLayout Mistral = new("Mistral");
        private static readonly LlamaLayout Mixtral = new("Mixtral");

        private const string Layer = "model.layers." + LayerIndex;

        private LlamaLayout(string name) => Name = name;

        public override string Name { get; }

        /// <summary>Whether a decoder is shaped like the Llama family (and so gets its names).</summary>
        public static bool Fits(ModelSpec spec)
            => spec.Positions.Kind == PositionKind.Rotary || spec.Norm.Kind == NormKind.RmsNorm || spec.FeedForward.IsGated;

        public static LlamaLayout For(ModelSpec spec)
            => spec.Experts is not null ? Mixtral : spec.Attention.Window is not null ? Mistral : Llama;

        // Older checkpoints saved the rotary frequencies as buffers.
        public override ImmutableArray<string> IgnoredSuffixes => ImmutableArray.Create(".self_attn.rotary_emb.inv_freq");

        public override string Path(Role role, string stack) => role switch
        {
            Role.TokenEmbedding => "model.embed_tokens",
            Role.PositionEmbedding => "model.embed_positions",
            Role.RelativeBias => "model.layers.0.self_attn.relative_attention_bias",
            Role.AttentionNorm => Layer + ".input_layernorm",
            Role.Query => Layer + ".self_attn.q_proj",
            Role.Key => Layer + ".self_attn.k_proj",
            Role.Value => Layer + ".self_attn.v_proj",
            Role.AttentionOutput => Layer + ".self_attn.o_proj",
            Role.FeedForwardNorm => Layer + ".post_attention_layernorm",
            Role.FeedForwardGate => Layer + ".mlp.gate_proj",
            Role.FeedForwardUp => Layer + ".mlp.up_proj",
            Role.FeedForwardDown => Layer + ".mlp.down_proj",
            Role.Router => Layer + ".block_sparse_moe.gate",
            Role.ExpertGate => Layer + ".block_sparse_moe.experts." + ExpertIndex + ".w1",
            Role.ExpertDown => Layer + ".block_sparse_moe.experts." + ExpertIndex + ".w2",
            Role.ExpertUp => Layer + ".block_sparse_moe.experts." + ExpertIndex + ".w3",
            Role.FinalNorm => "model.norm",
            Role.LmHead => "lm_head",
            _ => throw new System.ArgumentOutOfRangeException(nameof(role), role, Name + " checkpoints have no such tensor."),
        };

        public override IEnumerable<ContainerInfo> Containers(ModelSpec spec) => new[]
        {
            new ContainerInfo("model", Name + "Model"),
            new ContainerInfo(Layer, Name + "DecoderLayer"),
            new ContainerInfo(Layer + ".self_attn", Name + "Attention"),
            new ContainerInfo(Layer + ".mlp", Name + "MLP"),
            new ContainerInfo(Layer + ".block_sparse_moe", "MixtralSparseMoeBlock"),
            new ContainerInfo(Layer + ".block_sparse_moe.experts." + ExpertIndex, "MixtralBlockSparseTop2MLP"),
        };
    }
}
