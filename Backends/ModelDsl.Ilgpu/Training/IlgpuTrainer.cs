using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using ModelDsl.Training;

namespace ModelDsl.Ilgpu.Training
{
    /// <summary>
    /// A task's batches for <see cref="IlgpuTrainer"/>, on the host: each training step draws the next batch and runs the
    /// model's forward and backward passes on it; validation is a mean loss over fixed seeded batches. A source is
    /// written once per task (token windows here; the examples adapt the TorchSharp backend's task data).
    /// </summary>
    public interface IIlgpuBatchSource
    {
        /// <summary>What the task counts: "tokens", "images", "sequences".</summary>
        string ItemName { get; }

        /// <summary>Items in the training and validation splits.</summary>
        long TrainItems { get; }

        long ValidationItems { get; }

        /// <summary>Items per training batch, for throughput.</summary>
        long ItemsPerBatch { get; }

        /// <summary>Whether validation batches of the options' shape exist.</summary>
        bool CanValidate { get; }

        /// <summary>Draws the next training batch, runs forward and backward on it (gradients in the model) and returns its loss.</summary>
        float ForwardBackwardNext();

        /// <summary>The mean loss over <paramref name="batches"/> validation batches drawn with <paramref name="seed"/> (evaluation mode).</summary>
        double ValidationLoss(int batches, ulong seed);
    }

    /// <summary>
    /// Trains any generated ILGPU model with the TorchSharp trainer's recipe and contract: the same
    /// <see cref="TrainingOptions"/> (AdamW, decay on matrices only, warm-up and cosine schedule, global-norm clipping,
    /// periodic validation on fixed seeded batches), the same observer events and the same <see cref="TrainingReport"/>,
    /// so progress bars, plots and comparisons work unchanged on either backend.
    /// </summary>
    public sealed class IlgpuTrainer
    {
        private readonly IlgpuTransformerModel model;

        public IlgpuTrainer(IlgpuTransformerModel model, TrainingOptions options)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentNullException.ThrowIfNull(options);
            options.Validate();
            this.model = model;
            Options = options;
        }

        public TrainingOptions Options { get; }

        /// <exception cref="TrainingDivergedException">The loss or the gradient norm became NaN or infinite; names the step.</exception>
        public TrainingReport Train(IIlgpuBatchSource data, ITrainingObserver? observer = null, CancellationToken cancellation = default)
        {
            ArgumentNullException.ThrowIfNull(data);
            var o = Options;
            bool evaluate = o.EvalEvery > 0 && data.CanValidate;
            // What trains: every parameter, or the LoRA adapters alone when the base is frozen (as the TorchSharp trainer counts).
            long trainable = model.Parameters.TrainableCount;
            observer?.OnStart(new TrainingStart(model.Card.Name, o, trainable, Math.Min(model.Parameters.DecayedCount, trainable),
                data.TrainItems, data.ValidationItems, data.ItemName));

            var losses = new List<double>();
            var rates = new List<double>();
            var norms = new List<double>();
            var evaluations = new List<EvaluationPoint>();
            var smoother = new LossSmoother();
            var total = Stopwatch.StartNew();
            var training = new Stopwatch();
            long itemsPerStep = data.ItemsPerBatch;

            if (evaluate) evaluations.Add(new EvaluationPoint(0, Evaluate(data, observer, 0)));
            for (int step = 0; step < o.Steps; step++)
            {
                cancellation.ThrowIfCancellationRequested();
                double lr = o.LearningRateAt(step);
                training.Start();
                float loss = data.ForwardBackwardNext();
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
                    secondsPerStep > 0 ? itemsPerStep / secondsPerStep : 0, total.Elapsed, TimeSpan.FromSeconds(secondsPerStep * (o.Steps - step - 1))));
                if (evaluate && ((step + 1) % o.EvalEvery == 0 || step == o.Steps - 1))
                    evaluations.Add(new EvaluationPoint(step + 1, Evaluate(data, observer, step + 1)));
            }
            total.Stop();
            long seen = itemsPerStep * o.Steps;
            var report = new TrainingReport(model.Card.Name, o, losses, rates, norms, evaluations, seen, total.Elapsed, training.Elapsed,
                seen / Math.Max(training.Elapsed.TotalSeconds, 1e-9), data.ItemName);
            observer?.OnEnd(report);
            return report;
        }

        /// <summary>Mean validation loss over <see cref="TrainingOptions.EvalBatches"/> batches drawn with a fixed seed, as the TorchSharp trainer does.</summary>
        private double Evaluate(IIlgpuBatchSource data, ITrainingObserver? observer, int step)
        {
            double mean = data.ValidationLoss(Options.EvalBatches, Options.Seed ^ 0x5EED_0F_E7A1UL);
            observer?.OnEvaluation(new EvaluationPoint(step, mean));
            return mean;
        }
    }
}
