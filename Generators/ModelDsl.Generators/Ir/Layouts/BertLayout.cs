using System.Collections.Generic;
using System.Collections.Immutable;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir.Layouts
{
    /// <summary>
    /// Hugging Face BERT (BertForMaskedLM, BertForSequenceClassification): "bert.encoder.layer.{layer}.attention.self.query",
    /// nn.Linear weights, LayerNorm keeping its CamelCase name. The MLM head is "cls.predictions" (transform, tied
    /// decoder, its own bias); the classifier sits on "bert.pooler". BertModel files lack the "bert." prefix.
    /// </summary>
    internal sealed class BertLayout : CheckpointLayout
    {
        private static readonly BertLayout MaskedLanguageModel = new(pooled: false);
        private static readonly BertLayout Classifier = new(pooled: true);

        private const string Layer = "bert.encoder.layer." + LayerIndex;

        private readonly bool pooled;

        private BertLayout(bool pooled) => this.pooled = pooled;

        /// <summary>The classifier's layout keeps the pooler; the masked language model's skips it, as BertForMaskedLM does.</summary>
        public static BertLayout For(ModelSpec spec) => spec.Classifier is not null ? Classifier : MaskedLanguageModel;

        public override string Name => "BERT";

        public override string? OptionalPrefix => "bert.";

        // position_ids is a buffer; seq_relationship is BertForPreTraining's next-sentence head, and the pooler feeds only
        // that head in a pre-training checkpoint (transformers' BertForMaskedLM ignores "pooler" on load too).
        public override ImmutableArray<string> IgnoredSuffixes => pooled
            ? ImmutableArray.Create("embeddings.position_ids", "cls.seq_relationship.weight", "cls.seq_relationship.bias")
            : ImmutableArray.Create("embeddings.position_ids", "cls.seq_relationship.weight", "cls.seq_relationship.bias", "pooler.dense.weight", "pooler.dense.bias");

        // Checkpoints converted from Google's TensorFlow BERT (bert-base-uncased and the other original releases) keep
        // TensorFlow's LayerNorm names; transformers renames them on load.
        public override ImmutableArray<(string Legacy, string Current)> RenamedSuffixes
            => ImmutableArray.Create(("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"));

        public override IEnumerable<(string Name, Role Of)> TiedCopies(ModelSpec spec)
        {
            // The decoder's bias is the same tensor as cls.predictions.bias in Hugging Face's modules.
            yield return ("cls.predictions.decoder.bias", Role.MlmBias);
        }

        public override string Path(Role role, string stack) => role switch
        {
            Role.TokenEmbedding => "bert.embeddings.word_embeddings",
            Role.PositionEmbedding => "bert.embeddings.position_embeddings",
            Role.SegmentEmbedding => "bert.embeddings.token_type_embeddings",
            Role.EmbeddingNorm => "bert.embeddings.LayerNorm",
            Role.RelativeBias => "bert.encoder.layer.0.attention.self.relative_attention_bias",
            Role.Query => Layer + ".attention.self.query",
            Role.Key => Layer + ".attention.self.key",
            Role.Value => Layer + ".attention.self.value",
            Role.AttentionOutput => Layer + ".attention.output.dense",
            Role.AttentionNorm => Layer + ".attention.output.LayerNorm",
            Role.FeedForwardUp => Layer + ".intermediate.dense",
            Role.FeedForwardGate => Layer + ".intermediate.gate",
            Role.FeedForwardDown => Layer + ".output.dense",
            Role.FeedForwardNorm => Layer + ".output.LayerNorm",
            Role.Router => Layer + ".intermediate.router",
            Role.ExpertUp => Layer + ".intermediate.experts." + ExpertIndex + ".dense",
            Role.ExpertGate => Layer + ".intermediate.experts." + ExpertIndex + ".gate",
            Role.ExpertDown => Layer + ".intermediate.experts." + ExpertIndex + ".output",
            Role.FinalNorm => "bert.encoder.LayerNorm",
            Role.Pooler => "bert.pooler.dense",
            Role.Classifier => "classifier",
            Role.MlmTransform => "cls.predictions.transform.dense",
            Role.MlmNorm => "cls.predictions.transform.LayerNorm",
            Role.MlmBias => "cls.predictions.bias",
            Role.LmHead => "cls.predictions.decoder",
            _ => throw new System.ArgumentOutOfRangeException(nameof(role), role, "BERT checkpoints have no such tensor."),
        };

        public override IEnumerable<ContainerInfo> Containers(ModelSpec spec) => new[]
        {
            new ContainerInfo("bert", "BertModel"),
            new ContainerInfo("bert.embeddings", "BertEmbeddings"),
            new ContainerInfo("bert.encoder", "BertEncoder"),
            new ContainerInfo(Layer, "BertLayer"),
            new ContainerInfo(Layer + ".attention", "BertAttention"),
            new ContainerInfo(Layer + ".attention.self", "BertSelfAttention"),
            new ContainerInfo(Layer + ".attention.output", "BertSelfOutput"),
            new ContainerInfo(Layer + ".intermediate", "BertIntermediate"),
            new ContainerInfo(Layer + ".intermediate.experts." + ExpertIndex, "BertExpert"),
            new ContainerInfo(Layer + ".output", "BertOutput"),
            new ContainerInfo("bert.pooler", "BertPooler"),
            new ContainerInfo("cls", "BertOnlyMLMHead"),
            new ContainerInfo("cls.predictions", "BertLMPredictionHead"),
            new ContainerInfo("cls.predictions.transform", "BertPredictionHeadTransform"),
        };
    }
}
