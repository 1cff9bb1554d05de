using System.Collections.Generic;
using System.Collections.Immutable;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir.Layouts
{
    /// <summary>
    /// Hugging Face GPT-2 (GPT2LMHeadModel): "transformer.h.{layer}.attn.c_attn" with Conv1D weights stored
    /// [in, out] and query/key/value fused. Mixture-of-experts layers, which GPT-2 never had, take Mixtral's scheme
    /// under "mlp" ("mlp.gate", "mlp.experts.{expert}.c_fc"): ModelDsl's own names, documented in docs/dsl.md.
    /// </summary>
    internal sealed class Gpt2Layout : CheckpointLayout
    {
        public static readonly Gpt2Layout Instance = new();

        private const string Block = "transformer.h." + LayerIndex;

        public override string Name => "GPT-2";

        public override WeightLayout Linear => WeightLayout.InOut;

        public override bool FusedQueryKeyValue => true;

        public override string? OptionalPrefix => "transformer.";

        // Old GPT-2 checkpoints carry the causal masks as buffers.
        public override ImmutableArray<string> IgnoredSuffixes => ImmutableArray.Create(".attn.bias", ".attn.masked_bias");

        public override string Path(Role role, string stack) => role switch
        {
            Role.TokenEmbedding => "transformer.wte",
            Role.PositionEmbedding => "transformer.wpe",
            Role.RelativeBias => "transformer.h.0.attn.relative_attention_bias",
            Role.AttentionNorm => Block + ".ln_1",
            Role.QueryKeyValue => Block + ".attn.c_attn",
            Role.AttentionOutput => Block + ".attn.c_proj",
            Role.FeedForwardNorm => Block + ".ln_2",
            Role.FeedForwardUp => Block + ".mlp.c_fc",
            Role.FeedForwardDown => Block + ".mlp.c_proj",
            Role.Router => Block + ".mlp.gate",
            Role.ExpertUp => Block + ".mlp.experts." + ExpertIndex + ".c_fc",
            Role.ExpertDown => Block + ".mlp.experts." + ExpertIndex + ".c_proj",
            Role.FinalNorm => "transformer.ln_f",
            Role.LmHead => "lm_head",
            _ => throw new System.ArgumentOutOfRangeException(nameof(role), role, "GPT-2 checkpoints have no such tensor."),
        };

        public override IEnumerable<ContainerInfo> Containers(ModelSpec spec) => new[]
        {
            new ContainerInfo("transformer", "GPT2Model"),
            new ContainerInfo(Block, "GPT2Block"),
            new ContainerInfo(Block + ".attn", "GPT2Attention"),
            new ContainerInfo(Block + ".mlp", spec.Experts is null ? "GPT2MLP" : "GPT2SparseMLP"),
            new ContainerInfo(Block + ".mlp.experts." + ExpertIndex, "GPT2MLP"),
        };
    }
}
