using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using ModelDsl.Text;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// Training is real: the generated TrainGpt, trained with the project's LanguageModelTrainer on the first 20,000
    /// characters of the KJV text that ships with the examples, must beat the text's unigram entropy (the best loss
    /// without context) by a clear margin within 150 steps, on the held-out 10% tail.
    /// </summary>
    public sealed class ShortTrainingTests
    {
        private const int Characters = 20_000;
        private readonly ITestOutputHelper log;

        public ShortTrainingTests(ITestOutputHelper log) => this.log = log;

        /// <summary>H = -sum p ln p of the character frequencies, in nats (the unit of the cross-entropy loss).</summary>
        private static double UnigramEntropy(int[] tokens)
            => -tokens.GroupBy(t => t).Sum(g => (double)g.Count() / tokens.Length * Math.Log((double)g.Count() / tokens.Length));

        [Fact]
        public void TrainGpt_learns_KJV_text_well_below_its_unigram_entropy_in_150_steps()
        {
            string path = Path.Combine(AppContext.BaseDirectory, "Data", "kjv.txt");
            Assert.True(File.Exists(path), $"{path} is missing: the test project copies Examples/ModelDsl.Examples/Data/kjv.txt there");
            string text = File.ReadAllText(path).Substring(0, Characters);
            var tokenizer = CharTokenizer.FromCorpus(text);
            Assert.True(tokenizer.VocabSize <= TrainGpt.Card.Vocab, $"{tokenizer.VocabSize} characters do not fit TrainGpt's vocabulary");
            int[] tokens = tokenizer.Encode(text);
            double unigram = UnigramEntropy(tokens);
            Assert.Equal(unigram, Entropy.UnigramNats(tokens), 10); // the library's baseline agrees with the one here

            torch.random.manual_seed(20_000); // the initial weights
            using var model = TrainGpt.CreateTorchSharp();
            var options = new TrainingOptions
            {
                Steps = 150, BatchSize = 16, SequenceLength = 32, LearningRate = 3e-3, WarmupSteps = 10,
                EvalEvery = 50, EvalBatches = 8, Seed = 7,
            };
            using var trainer = new LanguageModelTrainer(model, options);
            var data = new TokenBatches(tokens, TrainGpt.Card.Vocab, validationFraction: 0.1);
            var clock = Stopwatch.StartNew();
            var report = trainer.Train(data);
            clock.Stop();

            log.WriteLine($"{tokenizer.VocabSize} characters, unigram entropy {unigram:F4} nats; {clock.Elapsed.TotalSeconds:F1} s, {report.ItemsPerSecond:F0} tokens/s");
            foreach (var point in report.Evaluations) log.WriteLine($"step {point.Step,3}: validation loss {point.Loss:F4}");
            double initial = report.InitialValidationLoss, final = report.FinalValidationLoss;
            Assert.All(report.TrainLosses, loss => Assert.True(double.IsFinite(loss)));
            Assert.True(final <= 0.85 * unigram,
                $"final validation loss {final:F4} is not 15% below the unigram entropy {unigram:F4} (needs <= {0.85 * unigram:F4})");
            Assert.True(final <= 0.70 * initial,
                $"final validation loss {final:F4} is not 30% below the initial {initial:F4} (needs <= {0.70 * initial:F4})");
        }
    }
}
