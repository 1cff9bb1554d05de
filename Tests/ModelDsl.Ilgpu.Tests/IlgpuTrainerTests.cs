using System;
using System.IO;
using System.Linq;
using ModelDsl.Ilgpu.Training;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using Xunit;
using static ModelDsl.Ilgpu.Tests.CrossBackendChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// The ILGPU trainer runs the TorchSharp trainer's recipe: from the same weights and options both draw the same
    /// windows, follow the same learning-rate schedule (warm-up, cosine), decay and clip the same way and evaluate on
    /// the same validation batches, so their reports agree step for step (to float32 rounding, as the cross-backend tests).
    /// </summary>
    public sealed class IlgpuTrainerTests : IDisposable
    {
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-ilgpu-").FullName;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        [Fact]
        public void Reports_the_torchsharp_trainers_losses_rates_and_validation_for_the_same_run()
        {
            var tokens = Enumerable.Range(0, 400).Select(i => (i * 7 + i / 13) % TinyIlgpuGpt.IlgpuModel.Vocab).ToArray();
            var data = new TokenBatches(tokens, TinyIlgpuGpt.IlgpuModel.Vocab, validationFraction: 0.2);
            var options = new TrainingOptions
            {
                Steps = 3, BatchSize = 2, SequenceLength = 6, LearningRate = 3e-3, WarmupSteps = 2, WeightDecay = 0.1,
                GradClipNorm = 1.0, EvalEvery = 3, EvalBatches = 1, Seed = 5,
            };
            torch.manual_seed(7);
            using var reference = TinyIlgpuGpt.CreateTorchSharp();
            using var model = Transfer(reference, TinyIlgpuGpt.CreateIlgpu(Device), folder);

            TrainingReport expected;
            using (var trainer = new LanguageModelTrainer(reference, options))
                expected = trainer.Train(data);
            var actual = new IlgpuLanguageModelTrainer(model, options).Train(data);

            Assert.Equal(expected.LearningRates, actual.LearningRates);
            Assert.Equal(expected.ItemsSeen, actual.ItemsSeen);
            Assert.Equal(expected.ItemName, actual.ItemName);
            for (int step = 0; step < options.Steps; step++)
            {
                AssertSameLoss((float)expected.TrainLosses[step], (float)actual.TrainLosses[step], step);
                Assert.True(Math.Abs(expected.GradNorms[step] - actual.GradNorms[step]) < 1e-3 * Math.Max(1, expected.GradNorms[step]),
                    $"step {step}: gradient norm {actual.GradNorms[step]} on ILGPU, {expected.GradNorms[step]} on TorchSharp");
            }
            Assert.Equal(expected.Evaluations.Select(e => e.Step), actual.Evaluations.Select(e => e.Step));
            foreach (var (e, a) in expected.Evaluations.Zip(actual.Evaluations))
                Assert.True(Math.Abs(e.Loss - a.Loss) < 1e-3, $"validation at step {e.Step}: {a.Loss} on ILGPU, {e.Loss} on TorchSharp");
        }
    }
}
