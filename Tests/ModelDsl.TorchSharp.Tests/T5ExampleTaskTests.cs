using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using ModelDsl.Examples.Tasks;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// The T5 example's data: the reversed-words task generated from the KJV text that ships with the examples
    /// and its word tokenizer with T5's special ids (Examples/ModelDsl.Examples/Tasks/, compiled into this project too),
    /// and the sequence-to-sequence batches the trainer consumes.
    /// </summary>
    public sealed class T5ExampleTaskTests
    {
        private static readonly Lazy<(string Text, ReversedWords Task)> Kjv = new(() =>
        {
            string text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "kjv.txt"));
            return (text, new ReversedWords(text));
        });

        private readonly ITestOutputHelper log;

        public T5ExampleTaskTests(ITestOutputHelper log) => this.log = log;

        [Fact]
        public void Every_example_is_a_fragment_of_a_verse_in_the_vocabulary_with_its_words_reversed()
        {
            var (text, task) = Kjv.Value;
            var verses = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            log.WriteLine($"{task.Train.Count} training, {task.Validation.Count} validation, {task.Test.Count} test fragments; " +
                          $"vocabulary of {task.Vocabulary.Count} words, the first {string.Join(" ", task.Vocabulary.Take(8))}");
            // Verse 2 ("And God said, Let there be light: and there was light.") is the first training verse; its first
            // fragment drew 6 words.
            Assert.Equal(new TextPair("And God said, Let there be", "be there Let said, God And"), task.Train[0]);

            // The vocabulary: the training verses' words by frequency, counted here independently.
            var counts = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int v = 0; v < verses.Length; v++)
                if (v % 10 >= 2)
                    foreach (var word in verses[v].Split(' ', StringSplitOptions.RemoveEmptyEntries))
                        counts[word] = counts.GetValueOrDefault(word) + 1;
            Assert.Equal(2046, task.Vocabulary.Count);
            Assert.Equal(counts.MaxBy(c => c.Value).Key, task.Vocabulary[0]);
            int least = task.Vocabulary.Min(w => counts[w]);
            Assert.DoesNotContain(counts, c => c.Value > least && !task.Vocabulary.Contains(c.Key));
            var vocabulary = task.Vocabulary.ToHashSet(StringComparer.Ordinal);

            foreach (var pair in task.Train.Concat(task.Validation).Concat(task.Test))
            {
                var words = pair.Source.Split(' ');
                Assert.InRange(words.Length, task.MinWords, task.MaxWords);
                Assert.All(words, word => Assert.Contains(word, vocabulary));
                var reversed = new string[words.Length];
                for (int i = 0; i < words.Length; i++) reversed[i] = words[words.Length - 1 - i];
                Assert.Equal(string.Join(" ", reversed), pair.Target);
            }
            // Fragments are consecutive words of a verse of their split (every 97th checked, to keep the search short).
            for (int i = 0; i < task.Test.Count; i += 97)
                Assert.Contains(verses.Where((_, v) => v % 10 == 0), verse => (" " + verse + " ").Contains(" " + task.Test[i].Source + " ", StringComparison.Ordinal));
            for (int i = 0; i < task.Validation.Count; i += 97)
                Assert.Contains(verses.Where((_, v) => v % 10 == 1), verse => (" " + verse + " ").Contains(" " + task.Validation[i].Source + " ", StringComparison.Ordinal));
        }

        [Fact]
        public void Splits_do_not_overlap_and_are_deterministic()
        {
            var (text, task) = Kjv.Value;
            var train = task.Train.Select(p => p.Source).ToHashSet(StringComparer.Ordinal);
            var validation = task.Validation.Select(p => p.Source).ToList();
            var test = task.Test.Select(p => p.Source).ToList();
            Assert.NotEmpty(validation);
            Assert.NotEmpty(test);
            Assert.DoesNotContain(validation, train.Contains);
            Assert.DoesNotContain(test, train.Contains);
            Assert.Empty(validation.Intersect(test, StringComparer.Ordinal));
            Assert.Equal(test.Count, test.Distinct(StringComparer.Ordinal).Count());
            Assert.Equal(validation.Count, validation.Distinct(StringComparer.Ordinal).Count());

            var again = new ReversedWords(text);
            Assert.Equal(task.Vocabulary, again.Vocabulary);
            Assert.Equal(task.Train, again.Train);
            Assert.Equal(task.Test, again.Test);
        }

        [Fact]
        public void Tokenizer_reserves_pad_and_end_and_round_trips_the_words()
        {
            var tokenizer = new WordTokenizer(new[] { "And", "God", "said," });
            Assert.Equal(0, WordTokenizer.Pad);
            Assert.Equal(1, WordTokenizer.End);
            Assert.Equal(5, tokenizer.VocabSize);
            Assert.Equal(new[] { 4, 3, 2 }, tokenizer.Encode("said, God And"));
            Assert.Equal(new[] { 4, 3, 2, 1 }, tokenizer.Encode("said, God And", end: true)); // T5 ends inputs with </s>
            Assert.Equal("said, God And", tokenizer.Decode(new[] { 4, 3, 2 }));
            Assert.Equal("<pad> God </s>", tokenizer.Decode(new[] { 0, 3, 1 }));
            var unknown = Assert.Throws<ArgumentException>(() => tokenizer.Encode("And God saw"));
            Assert.Contains("'saw'", unknown.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode(new[] { 5 }));
            Assert.Throws<ArgumentException>(() => new WordTokenizer(new[] { "a", "a" }));
            Assert.Throws<ArgumentException>(() => new WordTokenizer(new[] { "a b" }));

            string path = Path.Combine(Path.GetTempPath(), $"modeldsl-word-tokenizer-{Guid.NewGuid():N}.json");
            try
            {
                tokenizer.Save(path);
                Assert.Equal(new[] { 4, 3, 2 }, WordTokenizer.Load(path).Encode("said, God And"));
            }
            finally
            {
                File.Delete(path);
            }
        }

        [Fact]
        public void Batches_pad_sources_under_a_mask_and_shift_targets_for_teacher_forcing()
        {
            using var scope = torch.NewDisposeScope();
            var pairs = new (int[], int[])[] { (new[] { 5, 6, 7 }, new[] { 7, 6 }), (new[] { 8 }, new[] { 9, 9, 9 }) };
            var data = new SequenceToSequenceData(pairs, pairs, padId: 0, decoderStartId: 0, endId: 1);
            var batch = data.Batch(pairs);
            Assert.Equal(new long[] { 5, 6, 7, 8, 0, 0 }, batch.Source.data<long>().ToArray());
            Assert.Equal(new[] { true, true, true, true, false, false }, batch.SourceMask!.data<bool>().ToArray());
            // Decoder input: start, then the target; targets: the target, then the end, then -100.
            Assert.Equal(new long[] { 0, 7, 6, 0, 0, 9, 9, 9 }, batch.DecoderInput.data<long>().ToArray());
            Assert.Equal(new long[] { 7, 6, 1, -100, 9, 9, 9, 1 }, batch.Targets.data<long>().ToArray());
            Assert.Equal(new long[] { 2, 4 }, batch.Targets.shape);

            var options = new TrainingOptions { BatchSize = 4 };
            string Draw(ulong seed)
            {
                var stream = data.Stream(DataSplit.Train, options, seed, null);
                return string.Join(";", Enumerable.Range(0, 5).Select(_ => string.Join(",", stream.Next().Source.data<long>().ToArray())));
            }
            Assert.Equal(Draw(3), Draw(3));
            Assert.NotEqual(Draw(3), Draw(4));
            Assert.Equal(2, data.Items(DataSplit.Validation));
            Assert.Throws<ArgumentException>(() => new SequenceToSequenceData(Array.Empty<(int[], int[])>(), pairs));
            Assert.Throws<ArgumentException>(() => new SequenceToSequenceData(new[] { (Array.Empty<int>(), new[] { 1 }) }, pairs));
        }

        /// <summary>
        /// Training is real: TinyTiedT5 (vocabulary 50) learns the task restricted to the 48 most frequent words, from
        /// these batches with the project's trainer, in a short run: the validation loss ends far below the entropy of
        /// the target words (what a model that ignores its input at best reaches) and greedy decoding reverses held-out
        /// fragments exactly.
        /// </summary>
        [Fact]
        public void TinyTiedT5_learns_to_reverse_held_out_fragments_in_a_short_run()
        {
            var (text, _) = Kjv.Value;
            var task = new ReversedWords(text, vocabularySize: 48, minWords: 3, maxWords: 5);
            var tokenizer = new WordTokenizer(task.Vocabulary);
            Assert.Equal(TinyTiedT5.Card.Vocab, tokenizer.VocabSize);
            (int[], int[])[] Encoded(IEnumerable<TextPair> pairs) => pairs.Select(p => (tokenizer.Encode(p.Source, end: true), tokenizer.Encode(p.Target))).ToArray();
            var data = new SequenceToSequenceData(Encoded(task.Train), Encoded(task.Validation));
            var words = task.Train.SelectMany(p => p.Target.Split(' ')).GroupBy(w => w).Select(g => (double)g.Count()).ToArray();
            double entropy = -words.Sum(c => c / words.Sum() * Math.Log(c / words.Sum()));

            torch.random.manual_seed(12);
            using var model = TinyTiedT5.CreateTorchSharp();
            // One thread: reproducible results, and no waiting on a second thread when other programs share the cores.
            var options = new TrainingOptions
            {
                Steps = 200, BatchSize = 32, SequenceLength = 16, LearningRate = 1e-2, WarmupSteps = 20, WeightDecay = 0.01,
                EvalEvery = 100, EvalBatches = 4, Seed = 13, Threads = 1,
            };
            int threads = torch.get_num_threads();
            TrainingReport report;
            try
            {
                using var trainer = new ModelTrainer<SequenceToSequenceBatch>(model, options);
                report = trainer.Train(data);
            }
            finally
            {
                torch.set_num_threads(threads);
            }

            var test = task.Test.ToArray();
            var (source, mask) = data.PaddedSources(test.Select(p => tokenizer.Encode(p.Source, end: true)).ToArray());
            var decoded = model.Generate(source, mask, new DecodingOptions(MaxTokens: 8));
            double exact = test.Zip(decoded).Count(p => tokenizer.Decode(p.Second.Tokens) == p.First.Target) / (double)test.Length;
            log.WriteLine($"{task.Train.Count} training fragments of the 48 most frequent words; target word entropy {entropy:F3} nats");
            foreach (var point in report.Evaluations) log.WriteLine($"step {point.Step,3}: validation loss {point.Loss:F4}");
            log.WriteLine($"greedy exact match on {test.Length} held-out fragments: {exact:P1}; {report.ItemsPerSecond:F0} fragments/s");
            Assert.True(report.FinalValidationLoss < 0.5 * entropy, $"validation loss {report.FinalValidationLoss:F3} is not below half the target entropy {entropy:F3}");
            // Measured 25.0% of 140 (copying the input, or guessing from word frequencies, gets almost none right).
            Assert.True(exact >= 0.1, $"only {exact:P1} of held-out fragments reversed exactly");
        }
    }
}
