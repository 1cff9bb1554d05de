using System.Collections.Generic;
using System.Collections.Immutable;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir.Layouts
{
    /// <summary>
    /// What a parameter is for, independent of any checkpoint's naming. Family builders ask for roles; a
    /// <see cref="CheckpointLayout"/> names them. Roles marked "bare" are single tensors owned by a container (their
    /// path ends with the tensor's name); the others are modules whose tensors are "weight" and "bias".
    /// </summary>
    internal enum Role
    {
        TokenEmbedding, PositionEmbedding, SegmentEmbedding, EmbeddingNorm,
        PatchProjection,
        /// <summary>Bare: ViT's class token [1, 1, Hidden].</summary>
        ClassToken,
        /// <summary>Bare: ViT's position table [1, Patches+1, Hidden].</summary>
        PositionTable,
        RelativeBias,
        AttentionNorm, Query, Key, Value, QueryKeyValue, AttentionOutput,
        CrossAttentionNorm, CrossQuery, CrossKey, CrossValue, CrossOutput,
        FeedForwardNorm, FeedForwardUp, FeedForwardGate, FeedForwardDown,
        Router, ExpertUp, ExpertGate, ExpertDown,
        FinalNorm, Pooler, Classifier, MlmTransform, MlmNorm,
        /// <summary>Bare: BERT's MLM output bias [Vocab].</summary>
        MlmBias,
        LmHead,
    }

    /// <summary>
    /// A checkpoint layout: Hugging Face's names, weight orientation and container classes for one architecture,
    /// written once. Paths use "{layer}" for the index in the stack and "{expert}" for the expert; the stack name
    /// ("Encoder", "Decoder") picks between the two stacks of an encoder-decoder.
    /// </summary>
    internal abstract class CheckpointLayout
    {
        public const string LayerIndex = "{layer}";
        public const string ExpertIndex = "{expert}";

        /// <summary>The architecture whose checkpoints these names follow ("GPT-2", "BERT", ...).</summary>
        public abstract string Name { get; }

        /// <summary>How linear weights are stored: [in, out] (GPT-2's Conv1D) or [out, in] (nn.Linear).</summary>
        public virtual WeightLayout Linear => WeightLayout.OutIn;

        /// <summary>Whether self-attention's query, key and value are one fused projection (GPT-2's c_attn).</summary>
        public virtual bool FusedQueryKeyValue => false;

        /// <summary>The module path of a role (a bare role's path ends with its tensor's name).</summary>
        public abstract string Path(Role role, string stack);

        /// <summary>Container modules and their Hugging Face class names, for readable generated code.</summary>
        public abstract IEnumerable<ContainerInfo> Containers(ModelSpec spec);

        /// <summary>A prefix that some files of this architecture leave out ("transformer." in GPT2Model files).</summary>
        public virtual string? OptionalPrefix => null;

        /// <summary>Suffixes of tensors real checkpoints carry that are not parameters (old attention-mask buffers).</summary>
        public virtual ImmutableArray<string> IgnoredSuffixes => ImmutableArray<string>.Empty;

        /// <summary>Old spellings of name endings that real checkpoints still use → today's (BERT's "LayerNorm.gamma" is "LayerNorm.weight").</summary>
        public virtual ImmutableArray<(string Legacy, string Current)> RenamedSuffixes => ImmutableArray<(string, string)>.Empty;

        /// <summary>
        /// Tensors real checkpoints carry as copies of a tied parameter (T5's "encoder.embed_tokens.weight" is "shared"):
        /// checkpoint name → the role whose weight it must equal.
        /// </summary>
        public virtual IEnumerable<(string Name, Role Of)> TiedCopies(ModelSpec spec) => System.Array.Empty<(string, Role)>();

        /// <summary>The layout for a valid spec; see docs/dsl.md ("Checkpoint names").</summary>
        public static CheckpointLayout Of(ModelSpec spec) => spec.Family switch
        {
            ModelFamily.Encoder => BertLayout.For(spec),
            ModelFamily.EncoderDecoder => T5Layout.For(spec),
            ModelFamily.VisionEncoder => VitLayout.Instance,
            _ => LlamaLayout.Fits(spec) ? LlamaLayout.For(spec) : Gpt2Layout.Instance,
        };
    }
}
