using System;
using System.Collections.Generic;

namespace ModelDsl.Training
{
    /// <summary>
    /// Hyper-parameters of a backend's trainer (TorchSharp:
    /// <c>ModelDsl.TorchSharp.Training.ModelTrainer</c>): AdamW with decoupled weight decay on matrices only,
    /// linear warm-up then cosine decay to <see cref="MinLearningRateRatio"/> of the peak (the nanoGPT recipe).
    /// Defaults suit a small character-level model on a CPU.
    /// </summary>
    public sealed record TrainingOptions
    {
        /// <summary>Optimizer steps.</summary>
        public int Steps { get; init; } = 2000;

        /// <summary>Sequences per step (B).</summary>
        public int BatchSize { get; init; } = 16;

        /// <summary>Tokens per sequence (T); at most the model's context.</summary>
        public int SequenceLength { get; init; } = 128;

        /// <summary>Peak learning rate, reached at the end of warm-up.</summary>
        public double LearningRate { get; init; } = 1e-3;

        /// <summary>Steps of linear warm-up from LearningRate / WarmupSteps to LearningRate.</summary>
        public int WarmupSteps { get; init; } = 100;

        /// <summary>Final learning rate as a fraction of the peak (cosine decay over the steps after warm-up).</summary>
        public double MinLearningRateRatio { get; init; } = 0.1;

        /// <summary>AdamW decoupled weight decay, applied only to parameters with two or more dimensions.</summary>
        public double WeightDecay { get; init; } = 0.1;

        /// <summary>AdamW first-moment decay.</summary>
        public double Beta1 { get; init; } = 0.9;

        /// <summary>AdamW second-moment decay (0.95 rather than 0.999: steadier for small-batch transformer training).</summary>
        public double Beta2 { get; init; } = 0.95;

        /// <summary>AdamW denominator epsilon.</summary>
        public double Epsilon { get; init; } = 1e-8;

        /// <summary>Global gradient L2-norm clip; 0 disables clipping (the norm is still measured and reported).</summary>
        public double GradClipNorm { get; init; } = 1.0;

        /// <summary>Evaluate the validation loss before the first step, every this many steps and after the last; 0 disables evaluation.</summary>
        public int EvalEvery { get; init; } = 250;

        /// <summary>Validation batches per evaluation (the same seeded batches every time, so evaluations are comparable).</summary>
        public int EvalBatches { get; init; } = 20;

        /// <summary>Seed of the batch sampler and of torch's generator (dropout).</summary>
        public ulong Seed { get; init; } = 1337;

        /// <summary>libtorch intra-op threads (<c>torch.set_num_threads</c>); null leaves libtorch's default.</summary>
        public int? Threads { get; init; }

        /// <summary>
        /// On Linux with glibc, return freed native memory to the system every this many steps
        /// (<c>malloc_trim</c>); 0 disables it. Without it RSS grows step after step from allocator fragmentation
        /// (+282 MiB in 300 steps of a small model here, versus +13 MiB with it); see <c>ModelDsl.TorchSharp.Training.NativeHeap</c>.
        /// </summary>
        public int TrimNativeMemoryEvery { get; init; } = 50;

        /// <summary>Learning rate of step <paramref name="step"/> (0-based): linear warm-up, then cosine to the minimum.</summary>
        public double LearningRateAt(int step)
        {
            if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "Steps are counted from 0.");
            double min = LearningRate * MinLearningRateRatio;
            if (step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
            int decaySteps = Steps - WarmupSteps;
            if (decaySteps <= 1) return LearningRate;
            double progress = Math.Min(1.0, (double)(step - WarmupSteps) / (decaySteps - 1));
            return min + 0.5 * (1 + Math.Cos(Math.PI * progress)) * (LearningRate - min);
        }

        /// <summary>Checks every value; throws naming the first invalid one.</summary>
        /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
        public void Validate()
        {
            foreach (var (name, ok, value, rule) in Checks())
                if (!ok) throw new ArgumentOutOfRangeException(name, value, $"TrainingOptions.{name} {rule}.");
        }

        private IEnumerable<(string, bool, object, string)> Checks()
        {
            yield return (nameof(Steps), Steps > 0, Steps, "must be positive");
            yield return (nameof(BatchSize), BatchSize > 0, BatchSize, "must be positive");
            yield return (nameof(SequenceLength), SequenceLength > 0, SequenceLength, "must be positive");
            yield return (nameof(LearningRate), LearningRate > 0 && double.IsFinite(LearningRate), LearningRate, "must be positive and finite");
            yield return (nameof(WarmupSteps), WarmupSteps >= 0, WarmupSteps, "must not be negative");
            yield return (nameof(MinLearningRateRatio), MinLearningRateRatio >= 0 && MinLearningRateRatio <= 1, MinLearningRateRatio, "must be in [0, 1]");
            yield return (nameof(WeightDecay), WeightDecay >= 0 && double.IsFinite(WeightDecay), WeightDecay, "must not be negative");
            yield return (nameof(Beta1), Beta1 >= 0 && Beta1 < 1, Beta1, "must be in [0, 1)");
            yield return (nameof(Beta2), Beta2 >= 0 && Beta2 < 1, Beta2, "must be in [0, 1)");
            yield return (nameof(Epsilon), Epsilon > 0, Epsilon, "must be positive");
            yield return (nameof(GradClipNorm), GradClipNorm >= 0 && !double.IsNaN(GradClipNorm), GradClipNorm, "must not be negative (0 disables clipping)");
            yield return (nameof(EvalEvery), EvalEvery >= 0, EvalEvery, "must not be negative (0 disables evaluation)");
            yield return (nameof(EvalBatches), EvalBatches > 0 || EvalEvery == 0, EvalBatches, "must be positive when evaluating");
            yield return (nameof(Threads), Threads is null || Threads > 0, Threads ?? 0, "must be positive or null");
            yield return (nameof(TrimNativeMemoryEvery), TrimNativeMemoryEvery >= 0, TrimNativeMemoryEvery, "must not be negative (0 disables trimming)");
        }
    }
}
