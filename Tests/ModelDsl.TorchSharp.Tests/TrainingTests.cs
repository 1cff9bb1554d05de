using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using ModelDsl.Text;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    public class TrainingTests
    {
        /// <summary>The smallest causal LM: logits of the next token from the current one (a bigram table).</summary>
        private sealed class BigramModel : HandWrittenLanguageModel
        {
            private readonly Embedding table;

            public BigramModel(int vocab, int context = 64) : base(HandWrittenLanguageModel.CardFor(nameof(BigramModel), vocab, context, vocab, (long)vocab * vocab))
            {
                table = nn.Embedding(vocab, vocab);
                RegisterComponents();
            }

            public Embedding Table => table;

            protected override Tensor Logits(Tensor ids, ForwardState state) => table.forward(ids);
        }

        /// <summary>Embedding, a bias and an output projection tied to the embedding (lm_head = wte).</summary>
        private sealed class TiedModel : HandWrittenLanguageModel
        {
            private readonly Embedding wte;
            private readonly Parameter bias;
            private readonly global::TorchSharp.Modules.Linear lm_head;

            public TiedModel(int vocab, int hidden) : base(HandWrittenLanguageModel.CardFor(nameof(TiedModel), vocab, 32, hidden, (long)vocab * hidden + hidden))
            {
                wte = nn.Embedding(vocab, hidden);
                bias = new Parameter(torch.zeros(hidden));
                lm_head = nn.Linear(hidden, vocab, hasBias: false);
                lm_head.weight = wte.weight!;
                RegisterComponents();
            }

            protected override Tensor Logits(Tensor ids, ForwardState state)
            {
                using var h = wte.forward(ids);
                using var shifted = h + bias;
                return lm_head.forward(shifted);
            }
        }

        private static int[] Repeating(string pattern, int length, CharTokenizer tokenizer)
        {
            var ids = tokenizer.Encode(pattern);
            return Enumerable.Range(0, length).Select(i => ids[i % ids.Length]).ToArray();
        }

        private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

        [Fact]
        public void Batches_are_deterministic_and_targets_are_shifted_by_one()
        {
            int[] tokens = Enumerable.Range(0, 1000).Select(i => i % 97).ToArray();
            var data = new TokenBatches(tokens, vocabSize: 97, validationFraction: 0.1);
            Assert.Equal(900, data.TrainTokens.Length);
            Assert.Equal(100, data.ValidationTokens.Length);
            Assert.Equal(tokens.Skip(900), data.ValidationTokens.ToArray());

            using var scope = torch.NewDisposeScope();
            var a = data.Sampler(DataSplit.Train, batchSize: 4, sequenceLength: 16, seed: 42);
            var b = data.Sampler(DataSplit.Train, batchSize: 4, sequenceLength: 16, seed: 42);
            var c = data.Sampler(DataSplit.Train, batchSize: 4, sequenceLength: 16, seed: 43);
            for (int i = 0; i < 3; i++)
            {
                var (x1, y1) = a.Next();
                var (x2, y2) = b.Next();
                var (x3, _) = c.Next();
                Assert.Equal(new long[] { 4, 16 }, x1.shape);
                Assert.Equal(ScalarType.Int64, x1.dtype);
                Assert.True(Same(x1, x2) && Same(y1, y2));
                Assert.False(Same(x1, x3));
                // Within a row, targets are the ids shifted left by one; the last target follows the window.
                Assert.True(Same(y1[.., ..15], x1[.., 1..]));
                long[] ids = x1.data<long>().ToArray(), targets = y1.data<long>().ToArray();
                for (int row = 0; row < 4; row++)
                    Assert.Equal((ids[row * 16 + 15] + 1) % 97, targets[row * 16 + 15]);
            }
            // Windows never leave the split: starts in [0, 900 - 16).
            var starts = data.Sampler(DataSplit.Train, 64, 16, seed: 7).NextStarts();
            Assert.All(starts, s => Assert.InRange(s, 0, 900 - 16 - 1));
            Assert.Equal(starts, data.Sampler(DataSplit.Train, 64, 16, seed: 7).NextStarts());
        }

        [Fact]
        public void Batches_reject_bad_input_clearly()
        {
            Assert.Contains("Token id 5 at position 1", Assert.Throws<ArgumentOutOfRangeException>(
                () => new TokenBatches(new[] { 0, 5 }, vocabSize: 5)).Message);
            var data = new TokenBatches(Enumerable.Repeat(1, 100).ToArray(), 2, validationFraction: 0.1);
            var e = Assert.Throws<ArgumentException>(() => data.Sampler(DataSplit.Validation, 1, 10, 0));
            Assert.Contains("validation split has 10 tokens", e.Message);
        }

        /// <summary>
        /// Values recorded from the sampler before it was split into the neutral TokenWindowSampler and the TorchSharp
        /// BatchSampler: a seed must keep giving the same windows, on every backend.
        /// </summary>
        [Fact]
        public void Batches_for_a_seed_are_the_pinned_values_on_both_layers()
        {
            int[] tokens = Enumerable.Range(0, 1000).Select(i => (i * 7 + i / 13) % 97).ToArray();
            var data = new TokenBatches(tokens, 97, 0.1);
            Assert.Equal(new[] { 344, 14, 796, 515, 399, 220, 413, 290 }, data.Sampler(DataSplit.Train, 8, 16, 7).NextStarts());
            Assert.Equal(new[] { 344, 14, 796, 515, 399, 220, 413, 290 }, data.Windows(DataSplit.Train, 8, 16, 7).NextStarts());
            Assert.Equal(new[] { 50, 6, 36, 0 }, data.Windows(DataSplit.Validation, 4, 16, 1234567890123UL).NextStarts());

            long[][] expected =
            {
                new long[] { 36, 43, 50, 57, 64, 42, 49, 56, 63, 70, 16, 23, 30, 37, 44 },
                new long[] { 43, 50, 57, 64, 71, 49, 56, 63, 70, 77, 23, 30, 37, 44, 51 },
                new long[] { 45, 52, 59, 66, 74, 46, 53, 60, 67, 74, 66, 73, 80, 88, 95 },
                new long[] { 52, 59, 66, 74, 81, 53, 60, 67, 74, 82, 73, 80, 88, 95, 5 },
            };
            using var scope = torch.NewDisposeScope();
            var tensors = data.Sampler(DataSplit.Train, 3, 5, 42);
            var windows = data.Windows(DataSplit.Train, 3, 5, 42);
            long[] ids = new long[15], targets = new long[15];
            for (int batch = 0; batch < 2; batch++)
            {
                var (x, y) = tensors.Next();
                Assert.Equal(expected[2 * batch], x.data<long>().ToArray());
                Assert.Equal(expected[2 * batch + 1], y.data<long>().ToArray());
                windows.Next(ids, targets);
                Assert.Equal(expected[2 * batch], ids);
                Assert.Equal(expected[2 * batch + 1], targets);
            }
            Assert.Throws<ArgumentException>(() => windows.Next(new long[14], targets));
        }

        [Fact]
        public void Learning_rate_warms_up_then_decays_by_cosine_to_the_minimum()
        {
            var o = new TrainingOptions { Steps = 110, WarmupSteps = 10, LearningRate = 1e-2, MinLearningRateRatio = 0.1 };
            Assert.Equal(1e-3, o.LearningRateAt(0), 12);
            Assert.Equal(1e-2, o.LearningRateAt(9), 12);
            Assert.Equal(1e-2, o.LearningRateAt(10), 12);
            Assert.Equal(1e-3 + 0.5 * (1 + Math.Cos(Math.PI * 50 / 99.0)) * 9e-3, o.LearningRateAt(60), 12);
            Assert.Equal(1e-3, o.LearningRateAt(109), 12);
            for (int s = 11; s < 110; s++) Assert.True(o.LearningRateAt(s) <= o.LearningRateAt(s - 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => (o with { Beta2 = 1.0 }).Validate());
        }

        [Fact]
        public void Trainer_learns_a_repeating_sequence()
        {
            var tokenizer = CharTokenizer.FromCorpus("abcdefgh");
            int[] tokens = Repeating("abcdefgh", 4000, tokenizer);
            var data = new TokenBatches(tokens, tokenizer.VocabSize);
            torch.random.manual_seed(1);
            using var model = new BigramModel(tokenizer.VocabSize);
            var options = new TrainingOptions
            {
                Steps = 100, BatchSize = 8, SequenceLength = 32, LearningRate = 0.1, WarmupSteps = 10,
                WeightDecay = 0.0, EvalEvery = 50, EvalBatches = 4, Seed = 3, TrimNativeMemoryEvery = 0,
            };
            var observer = new RecordingObserver();
            var clock = Stopwatch.StartNew();
            using var trainer = new LanguageModelTrainer(model, options);
            var report = trainer.Train(data, observer);

            // ~0.3 s on an idle 2-core machine; the bound only catches pathological slowness on a loaded CI runner.
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
            Assert.Equal(100, report.TrainLosses.Count);
            Assert.Equal(new[] { 0, 50, 100 }, report.Evaluations.Select(e => e.Step));
            // The next character is a function of the current one: the loss falls from ~ln 8 = 2.08 to near 0.
            Assert.InRange(report.InitialValidationLoss, 1.5, 4.0);
            Assert.True(report.FinalValidationLoss < 0.1, $"final validation loss {report.FinalValidationLoss}");
            Assert.True(report.MeanTrainLoss(10) < 0.1 * report.TrainLosses[0], $"train loss {report.TrainLosses[0]} -> {report.MeanTrainLoss(10)}");
            Assert.True(report.ItemsPerSecond > 0);
            Assert.Equal(100, observer.Steps);
            Assert.Equal(3, observer.Evaluations);
            Assert.True(observer.Started && observer.Ended);
            Assert.True(model.training, "the model is back in training mode");

            // Deterministic for a seed: the same run again gives the same losses.
            torch.random.manual_seed(1);
            using var again = new BigramModel(tokenizer.VocabSize);
            using var trainer2 = new LanguageModelTrainer(again, options);
            Assert.Equal(report.TrainLosses, trainer2.Train(data).TrainLosses);
        }

        [Fact]
        public void Non_finite_loss_throws_naming_the_step()
        {
            var tokenizer = CharTokenizer.FromCorpus("ab");
            var data = new TokenBatches(Repeating("ab", 200, tokenizer), tokenizer.VocabSize);
            using var model = new BigramModel(tokenizer.VocabSize);
            using (torch.no_grad()) model.Table.weight!.fill_(double.NaN);
            using var trainer = new LanguageModelTrainer(model, new TrainingOptions { Steps = 5, SequenceLength = 8, BatchSize = 2, EvalEvery = 0 });
            var e = Assert.Throws<TrainingDivergedException>(() => trainer.Train(data));
            Assert.Equal(0, e.Step);
            Assert.Contains("loss is NaN at step 0", e.Message);
        }

        [Fact]
        public void Tied_parameters_are_optimised_once()
        {
            using var model = new TiedModel(vocab: 5, hidden: 3);
            var listed = model.named_parameters().Select(p => p.name).ToList();
            Assert.Equal(3, listed.Count); // TorchSharp lists the tied matrix under both names

            using var trainer = new LanguageModelTrainer(model, new TrainingOptions { SequenceLength = 8, WeightDecay = 0.5 });
            var names = trainer.OptimizedParameters.Select(p => p.Name).OrderBy(n => n, StringComparer.Ordinal).ToList();
            Assert.Equal(2, names.Count);
            Assert.Equal("bias", names[0]);
            Assert.Contains(names[1], new[] { "lm_head.weight", "wte.weight" });
            Assert.Equal(5 * 3 + 3, trainer.ParameterCount);
            Assert.Equal(5 * 3, trainer.DecayedParameterCount); // the 1-d bias gets no weight decay
            Assert.Equal(model.Card.ParameterCount, trainer.ParameterCount);

            // One AdamW step moves every element by at most lr (plus decay): updating the tied matrix twice would move it ~2 lr.
            var tokenizer = CharTokenizer.FromCorpus("abcde");
            var data = new TokenBatches(Repeating("abcde", 200, tokenizer), 5);
            var lr = 0.01;
            using var before = model.get_parameter("wte.weight")!.detach().clone();
            using var once = new LanguageModelTrainer(model, new TrainingOptions
            {
                Steps = 1, WarmupSteps = 0, LearningRate = lr, WeightDecay = 0, SequenceLength = 8, BatchSize = 4, EvalEvery = 0,
            });
            once.Train(data);
            using var delta = (model.get_parameter("wte.weight")!.detach() - before).abs().max();
            Assert.InRange(delta.item<float>(), 0.5 * lr, 1.01 * lr);
        }

        [Fact]
        public void Loss_plot_writes_a_png()
        {
            var losses = Enumerable.Range(0, 200).Select(i => 3.0 * Math.Exp(-i / 50.0) + 0.5 + 0.05 * Math.Sin(i)).ToList();
            var evaluations = new[] { new EvaluationPoint(0, 3.6), new EvaluationPoint(100, 0.95), new EvaluationPoint(200, 0.7) };
            string path = Path.Combine(Path.GetTempPath(), $"loss-{Guid.NewGuid():N}", "loss.png");
            try
            {
                LossPlot.Save(path, losses, evaluations, new[] { new ReferenceLine("unigram entropy", 3.0) }, "test");
                byte[] bytes = File.ReadAllBytes(path);
                Assert.True(bytes.Length > 1000);
                Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, bytes.Take(8));
                Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!)); // no temporary file left behind
            }
            finally
            {
                Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
            }
        }

        private sealed class RecordingObserver : ITrainingObserver
        {
            public bool Started, Ended;
            public int Steps, Evaluations;
            public void OnStart(TrainingStart start) => Started = true;
            public void OnStep(TrainingProgress progress) => Steps++;
            public void OnEvaluation(EvaluationPoint evaluation) => Evaluations++;
            public void OnEnd(TrainingReport report) => Ended = true;
        }
    }
}
