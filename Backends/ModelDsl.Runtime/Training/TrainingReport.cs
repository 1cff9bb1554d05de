using System;
using System.Collections.Generic;

namespace ModelDsl.Training
{
    /// <summary>A validation measurement: mean loss over the evaluation batches after <see cref="Step"/> optimizer steps.</summary>
    public readonly record struct EvaluationPoint(int Step, double Loss);

    /// <summary>
    /// Facts known when training starts, for observers. Items are what the task counts: tokens for language models,
    /// images or sequences for classifiers (<see cref="ItemName"/>).
    /// </summary>
    public sealed record TrainingStart(
        string ModelName,
        TrainingOptions Options,
        long ParameterCount,
        long DecayedParameterCount,
        long TrainItems,
        long ValidationItems,
        string ItemName = "tokens");

    /// <summary>One optimizer step, reported after it completes.</summary>
    public sealed record TrainingProgress(
        int Step,
        int TotalSteps,
        double Loss,
        double SmoothedLoss,
        double LearningRate,
        double GradNorm,
        double ItemsPerSecond,
        TimeSpan Elapsed,
        TimeSpan Remaining)
    {
        /// <summary>Completed steps (1-based), for progress bars.</summary>
        public int StepsDone => Step + 1;
    }

    /// <summary>Receives training events; every method has an empty default, so implement only what you need.</summary>
    public interface ITrainingObserver
    {
        /// <summary>Before the first step (and before the initial evaluation).</summary>
        void OnStart(TrainingStart start) { }

        /// <summary>After every optimizer step.</summary>
        void OnStep(TrainingProgress progress) { }

        /// <summary>After every evaluation (step 0 is before any update).</summary>
        void OnEvaluation(EvaluationPoint evaluation) { }

        /// <summary>After the last step and final evaluation.</summary>
        void OnEnd(TrainingReport report) { }
    }

    /// <summary>What a training run did: the loss curves, the throughput and the final validation loss.</summary>
    public sealed record TrainingReport(
        string ModelName,
        TrainingOptions Options,
        IReadOnlyList<double> TrainLosses,
        IReadOnlyList<double> LearningRates,
        IReadOnlyList<double> GradNorms,
        IReadOnlyList<EvaluationPoint> Evaluations,
        long ItemsSeen,
        TimeSpan Elapsed,
        TimeSpan TrainingTime,
        double ItemsPerSecond,
        string ItemName = "tokens")
    {
        /// <summary>Validation loss of the last evaluation, or NaN when evaluation was off.</summary>
        public double FinalValidationLoss => Evaluations.Count > 0 ? Evaluations[^1].Loss : double.NaN;

        /// <summary>Validation loss before training, or NaN when evaluation was off.</summary>
        public double InitialValidationLoss => Evaluations.Count > 0 && Evaluations[0].Step == 0 ? Evaluations[0].Loss : double.NaN;

        /// <summary>Mean train loss over the last <paramref name="steps"/> steps (less noisy than the last one).</summary>
        public double MeanTrainLoss(int steps = 50)
        {
            if (TrainLosses.Count == 0) return double.NaN;
            int n = Math.Clamp(steps, 1, TrainLosses.Count);
            double sum = 0;
            for (int i = TrainLosses.Count - n; i < TrainLosses.Count; i++) sum += TrainLosses[i];
            return sum / n;
        }
    }

    /// <summary>Exponential moving average with bias correction (as TensorBoard smooths curves).</summary>
    public sealed class LossSmoother
    {
        private readonly double decay;
        private double average;
        private int count;

        /// <summary>Creates a smoother; <paramref name="decay"/> in [0, 1), e.g. 0.95 averages over ~20 steps.</summary>
        public LossSmoother(double decay = 0.95)
        {
            if (!(decay >= 0 && decay < 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "The decay must be in [0, 1).");
            this.decay = decay;
        }

        /// <summary>Adds a value and returns the smoothed value so far.</summary>
        public double Add(double value)
        {
            count++;
            average = decay * average + (1 - decay) * value;
            return Value;
        }

        /// <summary>The bias-corrected average (NaN before the first value).</summary>
        public double Value => count == 0 ? double.NaN : average / (1 - Math.Pow(decay, count));

        /// <summary>Smooths a whole series.</summary>
        public static double[] Smooth(IReadOnlyList<double> values, double decay = 0.95)
        {
            var smoother = new LossSmoother(decay);
            var result = new double[values.Count];
            for (int i = 0; i < result.Length; i++) result[i] = smoother.Add(values[i]);
            return result;
        }
    }

    /// <summary>Thrown when the loss or the gradient norm stops being finite.</summary>
    public sealed class TrainingDivergedException : Exception
    {
        /// <summary>Creates the exception for <paramref name="step"/>.</summary>
        public TrainingDivergedException(int step, string message) : base(message) => Step = step;

        /// <summary>The 0-based step at which a non-finite value appeared.</summary>
        public int Step { get; }
    }
}
