using System;
using System.Linq;
using TorchSharp;
using ModelDsl.TorchSharp.Training;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// What the two BERT-style task bases share: the graph's forward over token ids, segment ids and a padding mask,
    /// with the checks that keep bad input from reaching the embeddings. Missing segments are all 0 (one sentence);
    /// a missing mask means no padding.
    /// </summary>
    public abstract class EncoderModel<TBatch> : TaskModel<TBatch>
    {
        protected EncoderModel(ModelCard card) : base(card) { }

        /// <summary>The graph's forward function (generated); <paramref name="segments"/> is unused without segment embeddings.</summary>
        protected abstract Tensor Logits(Tensor ids, Tensor segments, Tensor mask, ForwardState state);

        /// <summary>
        /// The head's logits for token ids [B, T]; <paramref name="segments"/> [B, T] are token-type ids (default 0),
        /// <paramref name="mask"/> [B, T] is true for real tokens and false for padding, which no token attends to.
        /// </summary>
        public ModelOutput Forward(Tensor ids, Tensor? segments = null, Tensor? mask = null)
        {
            CheckIds(ids, "token ids");
            if (segments is not null)
            {
                if (segments.dtype != ScalarType.Int64 || !segments.shape.SequenceEqual(ids.shape))
                    throw new ArgumentException($"Model '{Card.Name}': segment ids must be int64 shaped like the token ids [{string.Join(", ", ids.shape)}], but are {segments.dtype} [{string.Join(", ", segments.shape)}].", nameof(segments));
                long types = Math.Max(1, Card.SegmentTypes);
                using var outside = segments.lt(0).logical_or_(segments.ge(types));
                if (outside.any().item<bool>())
                    throw new ArgumentOutOfRangeException(nameof(segments), $"Model '{Card.Name}': a segment id is outside [0, {types}).");
            }
            if (mask is not null) CheckMask(mask, ids, "the padding mask");
            var state = new ForwardState(null, training);
            var logits = Logits(ids, segments ?? torch.zeros_like(ids), mask ?? torch.ones(ids.shape, ScalarType.Bool, ids.device), state);
            return Output(logits, state);
        }
    }

    /// <summary>
    /// A generated BERT-style masked language model: logits [B, T, Vocab] for every position and the MLM loss over
    /// the masked positions (targets are -100 elsewhere).
    /// </summary>
    public abstract class MaskedLanguageModel : EncoderModel<MaskedBatch>
    {
        protected MaskedLanguageModel(ModelCard card) : base(card) { }

        /// <inheritdoc />
        public override Tensor Loss(MaskedBatch batch) => Loss(batch.Ids, batch.Targets, batch.Segments, batch.Mask);

        /// <summary>Mean cross-entropy at the positions whose target is not -100 (the masked ones), plus any auxiliary loss.</summary>
        public Tensor Loss(Tensor ids, Tensor targets, Tensor? segments = null, Tensor? mask = null)
        {
            CheckTargets(targets, ids.shape, Card.Vocab, "targets");
            var output = Forward(ids, segments, mask);
            return WithAuxiliary(TaskLoss(output.Logits, targets), output);
        }
    }

    /// <summary>A generated BERT-style sequence classifier: class logits [B, Classes] from the pooled first token.</summary>
    public abstract class SequenceClassificationModel : EncoderModel<ClassificationBatch>
    {
        protected SequenceClassificationModel(ModelCard card) : base(card) { }

        /// <inheritdoc />
        public override Tensor Loss(ClassificationBatch batch) => Loss(batch.Ids, batch.Labels, batch.Segments, batch.Mask);

        /// <summary>Mean cross-entropy of the class logits against labels [B], plus any auxiliary loss.</summary>
        public Tensor Loss(Tensor ids, Tensor labels, Tensor? segments = null, Tensor? mask = null)
        {
            CheckTargets(labels, new[] { ids.shape[0] }, Card.Classes, "labels");
            var output = Forward(ids, segments, mask);
            return WithAuxiliary(TaskLoss(output.Logits, labels), output);
        }
    }

    /// <summary>A generated ViT-style image classifier: class logits [B, Classes] for images [B, Channels, ImageSize, ImageSize].</summary>
    public abstract class ImageClassificationModel : TaskModel<ImageBatch>
    {
        protected ImageClassificationModel(ModelCard card) : base(card) { }

        /// <summary>The graph's forward function (generated).</summary>
        protected abstract Tensor Logits(Tensor pixels, ForwardState state);

        private static readonly string[] ImageAxes = { "batch", "channels", "height", "width" };

        /// <summary>Class logits for images [B, Channels, ImageSize, ImageSize] (floating point).</summary>
        public ModelOutput Forward(Tensor pixels)
        {
            ArgumentNullException.ThrowIfNull(pixels);
            string wanted = $"images must be [batch, {Card.Channels}, {Card.ImageSize}, {Card.ImageSize}] (batch, channels, height, width)";
            if (pixels.dim() != 4)
                throw new ArgumentException(
                    $"Model '{Card.Name}': {wanted}, but have {pixels.dim()} dimension(s) [{string.Join(", ", pixels.shape)}].", nameof(pixels));
            var expected = new long[] { 0, Card.Channels, Card.ImageSize, Card.ImageSize };
            for (int axis = 0; axis < 4; axis++)
                if (axis == 0 ? pixels.shape[0] == 0 : pixels.shape[axis] != expected[axis])
                    throw new ArgumentException(
                        $"Model '{Card.Name}': images dimension {axis} ({ImageAxes[axis]}) is {pixels.shape[axis]}; {wanted}, but are [{string.Join(", ", pixels.shape)}].", nameof(pixels));
            if (!pixels.is_floating_point())
                throw new ArgumentException($"Model '{Card.Name}': images must be floating point, but are {pixels.dtype}.", nameof(pixels));
            var state = new ForwardState(null, training);
            return Output(Logits(pixels.to(DType), state), state);
        }

        /// <inheritdoc />
        public override Tensor Loss(ImageBatch batch) => Loss(batch.Pixels, batch.Labels);

        /// <summary>Mean cross-entropy of the class logits against labels [B], plus any auxiliary loss.</summary>
        public Tensor Loss(Tensor pixels, Tensor labels)
        {
            ArgumentNullException.ThrowIfNull(pixels);
            CheckTargets(labels, new[] { pixels.shape[0] }, Card.Classes, "labels");
            var output = Forward(pixels);
            return WithAuxiliary(TaskLoss(output.Logits, labels), output);
        }
    }
}
