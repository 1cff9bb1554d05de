using System;
using System.Threading;
using ModelDsl.Training;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>
    /// <see cref="ModelTrainer{TBatch}"/> for next-token prediction on a token corpus: checks that the windows fit the
    /// context and the corpus fits the vocabulary, and draws random windows of SequenceLength + 1 tokens.
    /// </summary>
    public sealed class LanguageModelTrainer : ModelTrainer<TokenBatch>
    {
        private readonly CausalLanguageModel model;

        /// <exception cref="ArgumentOutOfRangeException">An option is invalid, or the sequence is longer than the model's context.</exception>
        public LanguageModelTrainer(CausalLanguageModel model, TrainingOptions options) : base(Checked(model, options), options)
            => this.model = model;

        private static CausalLanguageModel Checked(CausalLanguageModel model, TrainingOptions options)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentNullException.ThrowIfNull(options);
            if (options.SequenceLength > model.Card.Context)
                throw new ArgumentOutOfRangeException(nameof(options), options.SequenceLength,
                    $"TrainingOptions.SequenceLength {options.SequenceLength} exceeds the context of model '{model.Card.Name}' ({model.Card.Context}).");
            return model;
        }

        /// <summary>Trains on windows of <paramref name="corpus"/>'s train split, evaluating on its validation split.</summary>
        /// <exception cref="ArgumentException">The corpus has ids beyond the model's vocabulary.</exception>
        public TrainingReport Train(TokenBatches corpus, ITrainingObserver? observer = null, CancellationToken cancellation = default)
        {
            ArgumentNullException.ThrowIfNull(corpus);
            if (corpus.VocabSize > model.Card.Vocab)
                throw new ArgumentException(
                    $"The data's vocabulary ({corpus.VocabSize}) is larger than model '{model.Card.Name}''s ({model.Card.Vocab}).", nameof(corpus));
            return Train(new LanguageModelData(corpus), observer, cancellation);
        }

        /// <summary>Mean loss over seeded windows of a split of <paramref name="corpus"/>, without gradients.</summary>
        public double EvaluateLoss(TokenBatches corpus, DataSplit split, int batches, ulong seed)
            => EvaluateLoss(new LanguageModelData(corpus), split, batches, seed);
    }
}
