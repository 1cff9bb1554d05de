using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using ModelDsl.Training;

namespace ModelDsl.Ilgpu.Training
{
    /// <summary>
    /// Trains a causal language model on the ILGPU backend with the TorchSharp trainer's recipe and contract: the same
    /// <see cref="TrainingOptions"/> (AdamW, decay on matrices only, warm-up and cosine schedule, global-norm clipping,
    /// periodic validation on fixed seeded batches), the same seeded token windows, the same observer events and the
    /// same <see cref="TrainingReport"/>, so progress bars, plots and comparisons work unchanged on either backend.
    /// </summary>
    public sealed class IlgpuLanguageModelTrainer
    {
        private readonly IlgpuCausalLanguageModel model;

        public IlgpuLanguageModelTrainer(IlgpuCausalLanguageModel model, TrainingOptions options)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentNullException.ThrowIfNull(options);
            options.Validate();
            if (options.SequenceLength > model.Card.Context)
                throw new ArgumentException($"Model '{model.Card.Name}': SequenceLength {options.SequenceLength} exceeds Context = {model.Card.Context}.", nameof(options));
            this.model = model;
            Options = options;
        }

        public TrainingOptions Options { get; }

        /// <exception cref="TrainingDivergedException">The loss or the gradient norm became NaN or infinite; names the step.</exception>
        public TrainingReport Train(TokenBatches data, ITrainingObserver? observer = null, CancellationToken cancellation = default)
        {
            ArgumentNullException.ThrowIfNull(data);
            var o = Options;
            var train = data.Windows(DataSplit.Train, o.BatchSize, o.SequenceLength, o.Seed);
            bool evaluate = o.EvalEvery > 0 && data.ValidationTokens.Length > o.SequenceLength;
            observer?.OnStart(new TrainingStart(model.Card.Name, o, model.ParameterCount, model.Parameters.DecayedCount,
                data.TrainTokens.Length, data.ValidationTokens.Length));

            var losses = new List<double>();
            var rates = new List<double>();
            var norms = new List<double>();
            var evaluations = new List<EvaluationPoint>();
            var smoother = new LossSmoother();
            var total = Stopwatch.StartNew();
            var training = new Stopwatch();
            long tokensPerStep = train.BatchElements;
            var ids = new long[tokensPerStep];
            var targets = new long[tokensPerStep];
            var ids32 = new int[tokensPerStep];
            var targets32 = new int[tokensPerStep];

            if (evaluate) evaluations.Add(new EvaluationPoint(0, Evaluate(data, observer, 0)));
            for (int step = 0; step < o.Steps; step++)
            {
                cancellation.ThrowIfCancellationRequested();
                double lr = o.LearningRateAt(step);
                train.Next(ids, targets);
                Narrow(ids, ids32);
                Narrow(targets, targets32);

                training.Start();
                float loss = model.ForwardBackward(ids32, targets32, o.BatchSize, o.SequenceLength);
                if (!float.IsFinite(loss))
                    throw new TrainingDivergedException(step, $"Training of '{model.Card.Name}' diverged: the loss is {loss} at step {step} (learning rate {lr:G3}).");
                float norm = model.AdamWStep(step + 1, (float)lr, (float)o.Beta1, (float)o.Beta2, (float)o.Epsilon, (float)o.WeightDecay,
                    o.GradClipNorm > 0 ? (float)o.GradClipNorm : 0f);
                if (!float.IsFinite(norm))
                    throw new TrainingDivergedException(step, $"Training of '{model.Card.Name}' diverged: the gradient norm is {norm} at step {step} (loss {loss:F4}).");
                training.Stop();

                losses.Add(loss);
                rates.Add(lr);
                norms.Add(norm);
                double secondsPerStep = training.Elapsed.TotalSeconds / (step + 1);
                observer?.OnStep(new TrainingProgress(step, o.Steps, loss, smoother.Add(loss), lr, norm,
                    secondsPerStep > 0 ? tokensPerStep / secondsPerStep : 0, total.Elapsed, TimeSpan.FromSeconds(secondsPerStep * (o.Steps - step - 1))));
                if (evaluate && ((step + 1) % o.EvalEvery == 0 || step == o.Steps - 1))
                    evaluations.Add(new EvaluationPoint(step + 1, Evaluate(data, observer, step + 1)));
            }
            total.Stop();
            long seen = tokensPerStep * o.Steps;
            var report = new TrainingReport(model.Card.Name, o, losses, rates, norms, evaluations, seen, total.Elapsed, training.Elapsed,
                seen / Math.Max(training.Elapsed.TotalSeconds, 1e-9));
            observer?.OnEnd(report);
            return report;
        }

        /// <summary>Mean validation loss over <see cref="TrainingOptions.EvalBatches"/> batches drawn with a fixed seed, as the TorchSharp trainer does.</summary>
        private double Evaluate(TokenBatches data, ITrainingObserver? observer, int step)
        {
            var o = Options;
            var windows = data.Windows(DataSplit.Validation, o.BatchSize, o.SequenceLength, o.Seed ^ 0x5EED_0F_E7A1UL);
            var ids = new long[windows.BatchElements];
            var targets = new long[windows.BatchElements];
            var ids32 = new int[ids.Length];
            var targets32 = new int[ids.Length];
            double sum = 0;
            for (int i = 0; i < o.EvalBatches; i++)
            {
                windows.Next(ids, targets);
                Narrow(ids, ids32);
                Narrow(targets, targets32);
                sum += model.Loss(ids32, targets32, o.BatchSize, o.SequenceLength);
            }
            double mean = sum / o.EvalBatches;
            observer?.OnEvaluation(new EvaluationPoint(step, mean));
            return mean;
        }

        private static void Narrow(long[] source, int[] destination)
        {
            for (int i = 0; i < source.Length; i++) destination[i] = checked((int)source[i]);
        }
    }
}
