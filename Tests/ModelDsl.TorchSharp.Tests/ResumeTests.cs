using System;
using System.IO;
using System.Linq;
using System.Threading;
using ModelDsl.Checkpoints;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// Issue 9: an interrupted run resumed from its training checkpoint follows the uninterrupted run's loss curve bit
    /// for bit (same thread count), with dropout on, so the weights, AdamW's moments and step counts, libtorch's
    /// generator and the batch stream's position must all be restored.
    /// </summary>
    public sealed class ResumeTests : IDisposable
    {
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-resume-").FullName;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        private static readonly TokenBatches Data = new(
            Enumerable.Range(0, 4000).Select(i => (i * 7 + i / 13 + (i % 5 == 0 ? 3 : 0)) % 50).ToArray(), vocabSize: 50, validationFraction: 0.1);

        private static readonly TrainingOptions Options = new()
        {
            Steps = 24, BatchSize = 4, SequenceLength = 16, LearningRate = 3e-3, WarmupSteps = 4, EvalEvery = 8, EvalBatches = 2,
            Threads = 1, Seed = 7, TrimNativeMemoryEvery = 0,
        };

        private static TinyDropoutGpt.TorchSharpModel Model()
        {
            torch.manual_seed(3);
            return TinyDropoutGpt.CreateTorchSharp();
        }

        private sealed class CancelAt : ITrainingObserver
        {
            private readonly CancellationTokenSource source;
            private readonly int step;

            public CancelAt(CancellationTokenSource source, int step) { this.source = source; this.step = step; }

            void ITrainingObserver.OnStep(TrainingProgress progress)
            {
                if (progress.Step == step) source.Cancel();
            }
        }

        [Fact]
        public void A_resumed_run_follows_the_uninterrupted_loss_curve_bit_for_bit()
        {
            using var scope = torch.NewDisposeScope();
            var uninterrupted = Model();
            TrainingReport expected;
            using (var trainer = new LanguageModelTrainer(uninterrupted, Options)) expected = trainer.Train(Data);

            string checkpoint = Path.Combine(folder, "run.training.safetensors"), best = Path.Combine(folder, "run.best.safetensors");
            using (var cancellation = new CancellationTokenSource())
            using (var trainer = new LanguageModelTrainer(Model(), Options) { Checkpoints = new TrainingCheckpoints(checkpoint, Every: 5, BestPath: best) })
                Assert.Throws<OperationCanceledException>(() => trainer.Train(Data, new CancelAt(cancellation, 13), cancellation.Token));
            Assert.True(File.Exists(checkpoint)); // written after step 10 (every 5 steps), the run stopped after step 13
            Assert.True(File.Exists(best));       // the evaluation at step 8 was the best so far

            var resumedModel = Model();
            TrainingReport resumed;
            using (var trainer = new LanguageModelTrainer(resumedModel, Options) { Checkpoints = new TrainingCheckpoints(checkpoint, Every: 5) })
            {
                trainer.Resume(checkpoint);
                resumed = trainer.Train(Data);
            }
            Assert.Equal(expected.TrainLosses, resumed.TrainLosses);   // exact: the first 10 from the checkpoint, 14 recomputed
            Assert.Equal(expected.LearningRates, resumed.LearningRates);
            Assert.Equal(expected.Evaluations, resumed.Evaluations);
            foreach (var ((name, a), (_, b)) in uninterrupted.named_parameters().Zip(resumedModel.named_parameters()))
                Assert.True(Numerics.Identical(a, b), $"{name} differs after resuming");
        }

        /// <summary>Copies the model's weights at every evaluation, to compare with what the trainer saved as the best.</summary>
        private sealed class WeightsAtEvaluations(nn.Module model) : ITrainingObserver
        {
            public System.Collections.Generic.Dictionary<int, (double Loss, Tensor[] Weights)> Points { get; } = new();

            void ITrainingObserver.OnEvaluation(EvaluationPoint evaluation)
                => Points[evaluation.Step] = (evaluation.Loss, model.parameters().Select(p => p.detach().clone().MoveToOuterDisposeScope()).ToArray());
        }

        [Fact]
        public void The_best_checkpoint_holds_the_weights_of_the_best_validation_loss()
        {
            using var scope = torch.NewDisposeScope();
            string best = Path.Combine(folder, "run.best.safetensors");
            var model = Model();
            var observer = new WeightsAtEvaluations(model);
            using (var trainer = new LanguageModelTrainer(model, Options) { Checkpoints = new TrainingCheckpoints(Path.Combine(folder, "run.training.safetensors"), Every: 5, BestPath: best) })
                trainer.Train(Data, observer);

            Assert.Equal(new[] { 0, 8, 16, 24 }, observer.Points.Keys.OrderBy(k => k));
            // Step 0 is the untrained model: the best file is written only when training beats it.
            var (step, point) = observer.Points.Where(p => p.Key > 0).MinBy(p => p.Value.Loss);
            Assert.True(point.Loss < observer.Points[0].Loss);
            var saved = Model();
            saved.LoadSafetensors(best);
            foreach (var ((name, p), expected) in saved.named_parameters().Zip(point.Weights))
                Assert.True(Numerics.Identical(expected, p), $"{name} in the best checkpoint is not the weights of step {step}, the best validation loss {point.Loss:F4}");
        }

        [Fact]
        public void Resuming_with_other_options_or_from_a_weights_file_is_refused_and_changes_nothing()
        {
            using var scope = torch.NewDisposeScope();
            string checkpoint = Path.Combine(folder, "short.training.safetensors");
            var model = Model();
            using (var trainer = new LanguageModelTrainer(model, Options with { Steps = 5 }) { Checkpoints = new TrainingCheckpoints(checkpoint, Every: 5) })
                trainer.Train(Data);

            var fresh = Model();
            var before = fresh.named_parameters().Select(p => p.parameter.clone()).ToList();
            using (var trainer = new LanguageModelTrainer(fresh, Options with { BatchSize = 8 }))
            {
                var e = Assert.Throws<SafetensorsException>(() => trainer.Resume(checkpoint));
                Assert.Contains("batch size", e.Message);
            }
            string weights = Path.Combine(folder, "weights.safetensors");
            model.SaveSafetensors(weights);
            using (var trainer = new LanguageModelTrainer(fresh, Options))
                Assert.Contains("not a training checkpoint", Assert.Throws<SafetensorsException>(() => trainer.Resume(weights)).Message);
            Assert.All(fresh.named_parameters().Zip(before), p => Assert.True(Numerics.Identical(p.First.parameter, p.Second)));
        }
    }
}
