using System.Collections.Generic;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir.Layouts
{
    /// <summary>
    /// Hugging Face ViT (ViTForImageClassification): "vit.encoder.layer.{layer}.attention.attention.query",
    /// nn.Linear weights, the patch projection a Conv2d [Hidden, Channels, P, P], bare "cls_token" [1, 1, Hidden] and
    /// "position_embeddings" [1, Patches+1, Hidden] on "vit.embeddings". ViTModel files lack the "vit." prefix.
    /// </summary>
    internal sealed class VitLayout : CheckpointLayout
    {
        public static readonly VitLayout Instance = new();

        private const string Layer = "vit.encoder.layer." + LayerIndex;

        public override string Name => "ViT";

        public override string? OptionalPrefix => "vit.";

        // ViTModel's pooler is not part of ViTForImageClassification.
        public override System.Collections.Immutable.ImmutableArray<string> IgnoredSuffixes
            => System.Collections.Immutable.ImmutableArray.Create("pooler.dense.weight", "pooler.dense.bias");

        public override string Path(Role role, string stack) => role switch
        {
            Role.PatchProjection => "vit.embeddings.patch_embeddings.projection",
            Role.ClassToken => "vit.embeddings.cls_token",
            Role.PositionTable => "vit.embeddings.position_embeddings",
            Role.RelativeBias => "vit.encoder.layer.0.attention.attention.relative_attention_bias",
            Role.AttentionNorm => Layer + ".layernorm_before",
            Role.Query => Layer + ".attention.attention.query",
            Role.Key => Layer + ".attention.attention.key",
            Role.Value => Layer + ".attention.attention.value",
            Role.AttentionOutput => Layer + ".attention.output.dense",
            Role.FeedForwardNorm => Layer + ".layernorm_after",
            Role.FeedForwardUp => Layer + ".intermediate.dense",
            Role.FeedForwardGate => Layer + ".intermediate.gate",
            Role.FeedForwardDown => Layer + ".output.dense",
            Role.Router => Layer + ".intermediate.router",
            Role.ExpertUp => Layer + ".intermediate.experts." + ExpertIndex + ".dense",
            Role.ExpertGate => Layer + ".intermediate.experts." + ExpertIndex + ".gate",
            Role.ExpertDown => Layer + ".intermediate.experts." + ExpertIndex + ".output",
            Role.FinalNorm => "vit.layernorm",
            Role.Classifier => "classifier",
            _ => throw new System.ArgumentOutOfRangeException(nameof(role), role, "ViT checkpoints have no such tensor."),
        };

        public override IEnumerable<ContainerInfo> Containers(ModelSpec spec) => new[]
        {
            new ContainerInfo("vit", "ViTModel"),
            new ContainerInfo("vit.embeddings", "ViTEmbeddings"),
            new ContainerInfo("vit.embeddings.patch_embeddings", "ViTPatchEmbeddings"),
            new ContainerInfo("vit.encoder", "ViTEncoder"),
            new ContainerInfo(Layer, "ViTLayer"),
            new ContainerInfo(Layer + ".attention", "ViTAttention"),
            new ContainerInfo(Layer + ".attention.attention", "ViTSelfAttention"),
            new ContainerInfo(Layer + ".attention.output", "ViTSelfOutput"),
            new ContainerInfo(Layer + ".intermediate", "ViTIntermediate"),
            new ContainerInfo(Layer + ".intermediate.experts." + ExpertIndex, "ViTExpert"),
            new ContainerInfo(Layer + ".output", "ViTOutput"),
        };
    }
}
