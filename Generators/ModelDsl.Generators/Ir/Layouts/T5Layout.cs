using System.Collections.Generic;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir.Layouts
{
    /// <summary>
    /// Hugging Face T5 (T5ForConditionalGeneration): "shared" embedding, "encoder.block.{layer}.layer.0.SelfAttention.q",
    /// nn.Linear weights without biases. Each block's sub-layers are numbered: self-attention is layer.0; in the
    /// decoder cross-attention ("EncDecAttention") is layer.1 and the feed-forward layer.2, in the encoder the
    /// feed-forward is layer.1. The relative position bias is held by block 0 of each stack and shared by all.
    /// A gated feed-forward (v1.1) is wi_0 (gate), wi_1 (up), wo; a plain one wi, wo. Mixture-of-experts layers
    /// follow Switch Transformers ("mlp.router.classifier") except that experts are numbered "mlp.experts.{expert}"
    /// rather than "expert_{expert}".
    /// </summary>
    internal sealed class T5Layout : CheckpointLayout
    {
        public const string EncoderStack = "Encoder";
        public const string DecoderStack = "Decoder";

        private static readonly T5Layout Plain = new(gated: false);
        private static readonly T5Layout Gated = new(gated: true);

        private readonly bool gated;

        private T5Layout(bool gated) => this.gated = gated;

        public static T5Layout For(ModelSpec spec) => spec.FeedForward.IsGated ? Gated : Plain;

        public override string Name => "T5";

        public override IEnumerable<(string Name, Role Of)> TiedCopies(ModelSpec spec)
        {
            // Hugging Face ties both stacks' embed_tokens to "shared"; files may carry the copies.
            yield return ("encoder.embed_tokens.weight", Role.TokenEmbedding);
            yield return ("decoder.embed_tokens.weight", Role.TokenEmbedding);
        }

        public override string Path(Role role, string stack)
        {
            string s = stack == DecoderStack ? "decoder" : "encoder";
            string block = s + ".block." + LayerIndex;
            string ffn = block + (stack == DecoderStack ? ".layer.2" : ".layer.1");
            return role switch
            {
                Role.TokenEmbedding => "shared",
                Role.PositionEmbedding => s + ".embed_positions",
                Role.RelativeBias => s + ".block.0.layer.0.SelfAttention.relative_attention_bias",
                Role.AttentionNorm => block + ".layer.0.layer_norm",
                Role.Query => block + ".layer.0.SelfAttention.q",
                Role.Key => block + ".layer.0.SelfAttention.k",
                Role.Value => block + ".layer.0.SelfAttention.v",
                Role.AttentionOutput => block + ".layer.0.SelfAttention.o",
                Role.CrossAttentionNorm => block + ".layer.1.layer_norm",
                Role.CrossQuery => block + ".layer.1.EncDecAttention.q",
                Role.CrossKey => block + ".layer.1.EncDecAttention.k",
                Role.CrossValue => block + ".layer.1.EncDecAttention.v",
                Role.CrossOutput => block + ".layer.1.EncDecAttention.o",
                Role.FeedForwardNorm => ffn + ".layer_norm",
                Role.FeedForwardUp => ffn + (gated ? ".DenseReluDense.wi_1" : ".DenseReluDense.wi"),
                Role.FeedForwardGate => ffn + ".DenseReluDense.wi_0",
                Role.FeedForwardDown => ffn + ".DenseReluDense.wo",
                Role.Router => ffn + ".mlp.router.classifier",
                Role.ExpertUp => ffn + ".mlp.experts." + ExpertIndex + (gated ? ".wi_1" : ".wi"),
                Role.ExpertGate => ffn + ".mlp.experts." + ExpertIndex + ".wi_0",
                Role.ExpertDown => ffn + ".mlp.experts." + ExpertIndex + ".wo",
                Role.FinalNorm => s + ".final_layer_norm",
                Role.LmHead => "lm_head",
                _ => throw new System.ArgumentOutOfRangeException(nameof(role), role, "T5 checkpoints have no such tensor."),
            };
        }

        public override IEnumerable<ContainerInfo> Containers(ModelSpec spec)
        {
            string denseClass = gated ? "T5DenseGatedActDense" : "T5DenseActDense";
            foreach (var s in new[] { "encoder", "decoder" })
            {
                string block = s + ".block." + LayerIndex;
                yield return new ContainerInfo(s, "T5Stack");
                yield return new ContainerInfo(block, "T5Block");
                yield return new ContainerInfo(block + ".layer", "T5BlockLayers");
                yield return new ContainerInfo(block + ".layer.0", "T5LayerSelfAttention");
                yield return new ContainerInfo(block + ".layer.0.SelfAttention", "T5Attention");
                string ffn = s == "decoder" ? block + ".layer.2" : block + ".layer.1";
                if (s == "decoder")
                {
                    yield return new ContainerInfo(block + ".layer.1", "T5LayerCrossAttention");
                    // Hugging Face's T5Attention also serves cross-attention; here it is its own class (no bias field).
                    yield return new ContainerInfo(block + ".layer.1.EncDecAttention", "T5CrossAttention");
                }
                yield return new ContainerInfo(ffn, "T5LayerFF");
                yield return new ContainerInfo(ffn + ".DenseReluDense", denseClass);
                yield return new ContainerInfo(ffn + ".mlp", "T5SparseMLP");
                yield return new ContainerInfo(ffn + ".mlp.router", "T5Router");
            }
        }
    }
}
