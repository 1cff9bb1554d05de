using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;
using ModelDsl.Checkpoints;
using ModelDsl.Training;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>
    /// Where a trainer writes its training checkpoints: every <see cref="Every"/> steps and after the last step to
    /// <see cref="Path"/>, and the weights of the best validation loss so far to <see cref="BestPath"/>.
    /// </summary>
    /// <param name="Path">The training checkpoint (weights, AdamW moments, progress): what <c>Resume</c> reads.</param>
    /// <param name="Every">Steps between checkpoints; at least 1.</param>
    /// <param name="BestPath">The weights (Hugging Face names, as SaveSafetensors writes) at the best validation loss; null: not kept.</param>
    public sealed record TrainingCheckpoints(string Path, int Every, string? BestPath = null)
    {
        public int Every { get; init; } = Every >= 1 ? Every
            : throw new ArgumentOutOfRangeException(nameof(Every), Every, "Checkpoints are written every 1 or more steps.");
    }

    /// <summary>
    /// A training checkpoint: one safetensors file, written atomically (a crash leaves the previous checkpoint, never a
    /// half-written one). Tensors: "model.{name}" for every trained parameter, "adamw.exp_avg.{name}" and
    /// "adamw.exp_avg_sq.{name}" for AdamW's moments, "rng.torch" for libtorch's generator (dropout). Metadata
    /// "modeldsl.training" holds the progress as JSON: steps done, AdamW's step counts, the batch stream's position,
    /// the loss, learning-rate and gradient-norm curves, the evaluations and the best validation loss, and the options
    /// that must not change on resume (batch size, sequence length, seed, peak learning rate, schedule).
    /// </summary>
    internal static class TrainingCheckpoint
    {
        private const string MetadataKey = "modeldsl.training";
        private const int FormatVersion = 1;

        internal sealed record Progress(
            int Version,
            string Model,
            int StepsDone,
            long[] AdamSteps,
            ulong[] Stream,
            double[] Losses,
            double[] Rates,
            double[] Norms,
            int[] EvaluationSteps,
            double[] EvaluationLosses,
            double BestValidation,
            string Options);

        /// <summary>The options a resumed run must share with the interrupted one for the same batches and schedule.</summary>
        public static string Fingerprint(TrainingOptions o) => string.Join(";",
            o.BatchSize, o.SequenceLength, o.Seed, o.LearningRate.ToString("R", CultureInfo.InvariantCulture), o.WarmupSteps,
            o.MinLearningRateRatio.ToString("R", CultureInfo.InvariantCulture), o.WeightDecay.ToString("R", CultureInfo.InvariantCulture),
            o.Beta1.ToString("R", CultureInfo.InvariantCulture), o.Beta2.ToString("R", CultureInfo.InvariantCulture));

        public static void Save(string path, IReadOnlyList<(string Name, Tensor Parameter, Tensor ExpAvg, Tensor ExpAvgSq)> state, Progress progress)
        {
            var tensors = new List<KeyValuePair<string, Tensor>>();
            foreach (var (name, parameter, m, v) in state)
            {
                tensors.Add(new("model." + name, parameter));
                tensors.Add(new("adamw.exp_avg." + name, m));
                tensors.Add(new("adamw.exp_avg_sq." + name, v));
            }
            using var rng = global::TorchSharp.torch.random.get_rng_state();
            tensors.Add(new("rng.torch", rng));
            Safetensors.Save(path, tensors, new Dictionary<string, string> { [MetadataKey] = JsonSerializer.Serialize(progress) });
        }

        /// <summary>Reads a checkpoint; the caller owns the tensors.</summary>
        /// <exception cref="SafetensorsException">The file is no training checkpoint, or an unreadable one.</exception>
        public static (Dictionary<string, Tensor> Tensors, Progress Progress) Load(string path)
        {
            var header = SafetensorsFile.ReadHeader(path);
            if (!header.Metadata.TryGetValue(MetadataKey, out var json))
                throw new SafetensorsException(path, null, $"'{path}' is not a training checkpoint: its metadata has no '{MetadataKey}' entry (a weights file loads with LoadSafetensors).");
            Progress? progress;
            try { progress = JsonSerializer.Deserialize<Progress>(json); }
            catch (JsonException e) { throw new SafetensorsException(path, null, $"The training progress in '{path}' is not valid: {e.Message}", e); }
            if (progress is null || progress.Version != FormatVersion)
                throw new SafetensorsException(path, null, $"'{path}' is a training checkpoint of format {progress?.Version}, not {FormatVersion}.");
            return (Safetensors.Load(path), progress);
        }
    }
}
