using System;
using System.Threading;
using ModelDsl.Training;

namespace ModelDsl.Ilgpu.Training
{
    /// <summary>
    /// Trains a causal language model on the ILGPU backend: <see cref="IlgpuTrainer"/> over the same seeded token
    /// windows the TorchSharp trainer draws, so both backends see the same batches for a given seed.
    /// </summary>
    public sealed class IlgpuLanguageModelTrainer
    {
        private readonly IlgpuCausalLanguageModel model;
        private readonly IlgpuTrainer trainer;

        public IlgpuLanguageModelTrainer(IlgpuCausalLanguageModel model, TrainingOptions options)
        {
            ArgumentNullException.ThrowIfNull(model);
            trainer = new IlgpuTrainer(model, options);
            if (options.SequenceLength > model.Card.Context)
                throw new ArgumentException($"Model '{model.Card.Name}': SequenceLength {options.SequenceLength} exceeds Context = {model.Card.Context}.", nameof(options));
            this.model = model;
        }

        public TrainingOptions Options => trainer.Options;

        /// <exception cref="TrainingDivergedException">The loss or the gradient norm became NaN or infinite; names the step.</exception>
        public TrainingReport Train(TokenBatches data, ITrainingObserver? observer = null, CancellationToken cancellation = default)
        {
            ArgumentNullException.ThrowIfNull(data);
            return trainer.Train(new TokenWindows(model, data, Options), observer, cancellation);
        }

        /// <summary>Random windows of SequenceLength + 1 tokens (ids and the next tokens), seeded as the TorchSharp trainer seeds them.</summary>
        private sealed class TokenWindows : IIlgpuBatchSource
        {
            private readonly IlgpuCausalLanguageModel model;
            private readonly TokenBatches data;
            private readonly TrainingOptions options;
            private readonly TokenWindowSampler train;
            private readonly long[] ids, targets;
            private readonly int[] ids32, targets32;

            public TokenWindows(IlgpuCausalLanguageModel model, TokenBatches data, TrainingOptions options)
            {
                this.model = model;
                this.data = data;
                this.options = options;
                train = data.Windows(DataSplit.Train, options.BatchSize, options.SequenceLength, options.Seed);
                ids = new long[train.BatchElements];
                targets = new long[train.BatchElements];
                ids32 = new int[ids.Length];
                targets32 = new int[ids.Length];
            }

            public string ItemName => "tokens";

            public long TrainItems => data.TrainTokens.Length;

            public long ValidationItems => data.ValidationTokens.Length;

            public long ItemsPerBatch => train.BatchElements;

            public bool CanValidate => data.ValidationTokens.Length > options.SequenceLength;

            public float ForwardBackwardNext()
            {
                train.Next(ids, targets);
                Narrow(ids, ids32);
                Narrow(targets, targets32);
                return model.ForwardBackward(ids32, targets32, options.BatchSize, options.SequenceLength);
            }

            public double ValidationLoss(int batches, ulong seed)
            {
                var windows = data.Windows(DataSplit.Validation, options.BatchSize, options.SequenceLength, seed);
                double sum = 0;
                for (int i = 0; i < batches; i++)
                {
                    windows.Next(ids, targets);
                    Narrow(ids, ids32);
                    Narrow(targets, targets32);
                    sum += model.Loss(ids32, targets32, options.BatchSize, options.SequenceLength);
                }
                return sum / batches;
            }

            private static void Narrow(long[] source, int[] destination)
            {
                for (int i = 0; i < source.Length; i++) destination[i] = checked((int)source[i]);
            }
        }
    }
}
