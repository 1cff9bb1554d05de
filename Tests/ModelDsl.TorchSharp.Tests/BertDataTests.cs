using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using ModelDsl.Examples;
using ModelDsl.Text;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// The data side of BERT: the tokenizer's special tokens, BERT's masking recipe (rates checked statistically over
    /// hundreds of thousands of tokens, determinism, special tokens never touched), padded encoder batches, the
    /// classification score, and the KJV book labels of the example.
    /// </summary>
    public sealed class BertDataTests
    {
        private const int Vocab = 66; // 4 special tokens + 62 characters, as the KJV example
        private static readonly int[] Specials = { BertCharTokenizer.Pad, BertCharTokenizer.Cls, BertCharTokenizer.Sep, BertCharTokenizer.Mask };

        private readonly ITestOutputHelper log;

        public BertDataTests(ITestOutputHelper log) => this.log = log;

        // ------------------------------------------------------------------------------------------------------
        // Tokenizer
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Tokenizer_puts_the_special_tokens_first_and_truncates_sequences_between_CLS_and_SEP()
        {
            var tokenizer = BertCharTokenizer.FromCorpus("abc d\n");
            Assert.Equal(4 + 6, tokenizer.VocabSize);
            Assert.Equal(new[] { 4 + 2, 4 + 3 }, tokenizer.Encode("ab")); // characters '\n', ' ', 'a', ... shifted by 4
            Assert.Equal(new[] { 1, 6, 7, 8, 2 }, tokenizer.EncodeSequence("abc", 16));
            Assert.Equal(new[] { 1, 6, 7, 2 }, tokenizer.EncodeSequence("abc d", 4)); // room for two characters
            Assert.Equal("[CLS]ab[MASK]d[SEP][PAD]", tokenizer.Decode(new[] { 1, 6, 7, 3, 9, 2, 0 }));
            Assert.True(BertCharTokenizer.IsSpecial(3));
            Assert.False(BertCharTokenizer.IsSpecial(4));
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode(new[] { 1, 10 }));
            Assert.Contains("Token id 10 at position 1 is outside the vocabulary [0, 10)", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.EncodeSequence("abc", 2));
        }

        [Fact]
        public void Tokenizer_saves_and_loads_and_explains_a_wrong_file()
        {
            var tokenizer = BertCharTokenizer.FromCorpus("In the beginning God created the heaven and the earth.\n");
            string path = Path.Combine(Path.GetTempPath(), $"bert-tokenizer-{Guid.NewGuid():N}.json");
            try
            {
                tokenizer.Save(path);
                var loaded = BertCharTokenizer.Load(path);
                Assert.Equal(tokenizer.VocabSize, loaded.VocabSize);
                Assert.Equal(tokenizer.EncodeSequence("God created", 32), loaded.EncodeSequence("God created", 32));
            }
            finally
            {
                File.Delete(path);
            }
            var e = Assert.Throws<InvalidDataException>(() => BertCharTokenizer.FromJson(tokenizer.ToJson().Replace("[MASK]", "[UNK]")));
            Assert.Contains("\"special_tokens\" must be [\"[PAD]\", \"[CLS]\", \"[SEP]\", \"[MASK]\"]", e.Message);
            e = Assert.Throws<InvalidDataException>(() => BertCharTokenizer.FromJson(CharTokenizer.FromCorpus("ab").ToJson()));
            Assert.Contains("Not a BERT character tokenizer file", e.Message);
        }

        // ------------------------------------------------------------------------------------------------------
        // Masking
        // ------------------------------------------------------------------------------------------------------

        /// <summary>[CLS], <paramref name="length"/> random characters, [SEP], then <paramref name="padding"/> [PAD].</summary>
        private static long[] Sequence(SplitMix64 random, int length, int padding)
        {
            var ids = new long[length + 2 + padding];
            ids[0] = BertCharTokenizer.Cls;
            for (int t = 1; t <= length; t++) ids[t] = BertCharTokenizer.SpecialCount + (long)random.NextBelow(Vocab - BertCharTokenizer.SpecialCount);
            ids[length + 1] = BertCharTokenizer.Sep;
            return ids;
        }

        private static TokenMasker Masker(ulong seed, MaskingRecipe? recipe = null)
            => new(recipe ?? new MaskingRecipe(), BertCharTokenizer.Mask, Vocab, Specials, seed);

        /// <summary>
        /// Over 2,000 sequences of 200 characters (400,000 maskable tokens, ~60,000 chosen) the rates are within about
        /// five standard deviations of BERT's: chosen 15% (sd 0.06 points), of those [MASK] 80% (sd 0.16), a different
        /// random token 10% x 61/62 and unchanged 10% + 10%/62 (a random draw may return the original; sd 0.12).
        /// </summary>
        [Fact]
        public void Masking_follows_BERTs_rates_and_never_touches_special_tokens()
        {
            var masker = Masker(501);
            var random = new SplitMix64(502);
            long maskable = 0, chosen = 0, masked = 0, replaced = 0, kept = 0;
            var drawn = new long[Vocab];
            for (int s = 0; s < 2000; s++)
            {
                var ids = Sequence(random, 200, 20);
                var input = new long[ids.Length];
                var targets = new long[ids.Length];
                int count = masker.Apply(ids, input, targets);
                Assert.Equal(count, targets.Count(t => t != TokenMasker.Ignored));
                for (int t = 0; t < ids.Length; t++)
                {
                    if (BertCharTokenizer.IsSpecial((int)ids[t]))
                    {
                        Assert.Equal(ids[t], input[t]);
                        Assert.Equal(TokenMasker.Ignored, targets[t]);
                        continue;
                    }
                    maskable++;
                    if (targets[t] == TokenMasker.Ignored)
                    {
                        Assert.Equal(ids[t], input[t]);
                        continue;
                    }
                    chosen++;
                    Assert.Equal(ids[t], targets[t]);
                    if (input[t] == BertCharTokenizer.Mask) masked++;
                    else
                    {
                        Assert.False(BertCharTokenizer.IsSpecial((int)input[t]), "a random replacement must not be a special token");
                        if (input[t] == ids[t]) kept++;
                        else { replaced++; drawn[input[t]]++; }
                    }
                }
            }
            const double characters = Vocab - BertCharTokenizer.SpecialCount;
            double chooseRate = (double)chosen / maskable, maskRate = (double)masked / chosen;
            double replaceRate = (double)replaced / chosen, keepRate = (double)kept / chosen;
            log.WriteLine($"{maskable} maskable tokens: chosen {chooseRate:P3}; of the chosen: [MASK] {maskRate:P3}, other token {replaceRate:P3}, unchanged {keepRate:P3}");
            Assert.InRange(chooseRate, 0.15 - 0.003, 0.15 + 0.003);
            Assert.InRange(maskRate, 0.8 - 0.008, 0.8 + 0.008);
            Assert.InRange(replaceRate, 0.1 * (1 - 1 / characters) - 0.006, 0.1 * (1 - 1 / characters) + 0.006);
            Assert.InRange(keepRate, 0.1 + 0.1 / characters - 0.006, 0.1 + 0.1 / characters + 0.006);
            // Replacements are drawn from every character, roughly uniformly (~95 each here), never from the special ids.
            Assert.All(Enumerable.Range(0, BertCharTokenizer.SpecialCount), id => Assert.Equal(0, drawn[id]));
            Assert.InRange(drawn.Skip(BertCharTokenizer.SpecialCount).Min(), 40, 95);
            Assert.InRange(drawn.Skip(BertCharTokenizer.SpecialCount).Max(), 95, 160);
        }

        [Fact]
        public void Masking_is_deterministic_for_a_seed()
        {
            long[] Run(ulong seed)
            {
                var masker = Masker(seed);
                var random = new SplitMix64(511);
                var all = new List<long>();
                for (int s = 0; s < 50; s++)
                {
                    var ids = Sequence(random, 60, 5);
                    var input = new long[ids.Length];
                    var targets = new long[ids.Length];
                    masker.Apply(ids, input, targets);
                    all.AddRange(input);
                    all.AddRange(targets);
                }
                return all.ToArray();
            }
            Assert.Equal(Run(7), Run(7));
            Assert.NotEqual(Run(7), Run(8));
        }

        [Fact]
        public void Every_sequence_with_a_character_gets_at_least_one_target_and_a_sequence_of_only_special_tokens_none()
        {
            var masker = Masker(521);
            var ids = new long[] { BertCharTokenizer.Cls, 10, BertCharTokenizer.Sep, BertCharTokenizer.Pad };
            for (int i = 0; i < 200; i++)
            {
                var input = new long[4];
                var targets = new long[4];
                Assert.Equal(1, masker.Apply(ids, input, targets));
                Assert.Equal(new long[] { -100, 10, -100, -100 }, targets);
            }
            var specials = new long[] { BertCharTokenizer.Cls, BertCharTokenizer.Sep, BertCharTokenizer.Pad };
            var none = new long[3];
            Assert.Equal(0, masker.Apply(specials, new long[3], none));
            Assert.All(none, t => Assert.Equal(TokenMasker.Ignored, t));
        }

        [Fact]
        public void Bad_masking_arguments_are_named()
        {
            Assert.Contains("ChooseRate", Assert.Throws<ArgumentOutOfRangeException>(() => Masker(1, new MaskingRecipe { ChooseRate = 0 })).Message);
            Assert.Contains("RandomShare", Assert.Throws<ArgumentOutOfRangeException>(() => Masker(1, new MaskingRecipe { MaskShare = 0.95, RandomShare = 0.1 })).Message);
            Assert.Contains("mask id 4 must be one of the special token ids",
                Assert.Throws<ArgumentException>(() => new TokenMasker(new MaskingRecipe(), 4, Vocab, Specials, 1)).Message);
            var e = Assert.Throws<ArgumentException>(() => Masker(1).Apply(new long[] { 1, 70, 2 }, new long[3], new long[3]));
            Assert.Contains("Token id 70 at position 1 is outside the vocabulary [0, 66)", e.Message);
        }

        // ------------------------------------------------------------------------------------------------------
        // Batches
        // ------------------------------------------------------------------------------------------------------

        private static List<int[]> Sequences(ulong seed, int count)
        {
            var random = new SplitMix64(seed);
            return Enumerable.Range(0, count).Select(_ => Sequence(random, 3 + (int)random.NextBelow(20), 0).Select(i => (int)i).ToArray()).ToList();
        }

        [Fact]
        public void Masked_language_batches_pad_to_the_longest_sequence_and_mask_only_real_characters()
        {
            using var scope = torch.NewDisposeScope();
            var data = new MaskedLanguageData(Sequences(531, 40), Sequences(532, 10), Vocab, BertCharTokenizer.Pad, BertCharTokenizer.Mask, Specials);
            var options = new TrainingOptions { BatchSize = 8, SequenceLength = 24 };
            var stream = data.Stream(DataSplit.Train, options, 533, null);
            for (int step = 0; step < 20; step++)
            {
                var batch = stream.Next();
                Assert.Equal(8, batch.Ids.shape[0]);
                Assert.True(batch.Ids.shape[1] <= 24);
                var mask = batch.Mask!;
                Assert.Equal(batch.Ids.shape, mask.shape);
                Assert.True(batch.Ids.masked_select(mask.logical_not()).eq(BertCharTokenizer.Pad).all().item<bool>(), "padding must be [PAD]");
                Assert.True(batch.Targets.masked_select(mask.logical_not()).eq(TokenMasker.Ignored).all().item<bool>(), "padding is never a target");
                Assert.True(mask.all(1).any().item<bool>(), "the longest sequence of a batch fills its row");
                var chosen = batch.Targets.ne(TokenMasker.Ignored);
                Assert.True(chosen.sum(1).ge(1).all().item<bool>(), "every sequence has a target");
                Assert.True(batch.Targets.masked_select(chosen).ge(BertCharTokenizer.SpecialCount).all().item<bool>(), "targets are characters");
            }
            // The same seed gives the same batches, masks included.
            var again = data.Stream(DataSplit.Train, options, 533, null).Next();
            var first = data.Stream(DataSplit.Train, options, 533, null).Next();
            Assert.True(Numerics.Identical(again.Ids, first.Ids) && Numerics.Identical(again.Targets, first.Targets));

            var e = Assert.Throws<ArgumentException>(() => data.Stream(DataSplit.Train, options with { SequenceLength = 10 }, 1, null));
            Assert.Contains("more than TrainingOptions.SequenceLength 10", e.Message);
        }

        [Fact]
        public void Classification_batches_carry_their_labels_and_an_in_order_pass_sees_every_example_once()
        {
            using var scope = torch.NewDisposeScope();
            var train = Sequences(541, 30);
            var validation = Sequences(542, 11);
            var labels = Enumerable.Range(0, 30).Select(i => i % 3).ToList();
            var validationLabels = Enumerable.Range(0, 11).Select(i => (i + 1) % 3).ToList();
            var data = new SequenceClassificationData(train, labels, validation, validationLabels, 3, BertCharTokenizer.Pad);
            var batches = data.InOrder(DataSplit.Validation, 4).ToList();
            Assert.Equal(new long[] { 4, 4, 3 }, batches.Select(b => b.Labels.shape[0]));
            Assert.Equal(validationLabels.Select(l => (long)l), batches.SelectMany(b => b.Labels.data<long>().ToArray()));
            var lengths = batches.SelectMany(b => b.Mask!.sum(1).data<long>().ToArray()).ToList();
            Assert.Equal(validation.Select(s => (long)s.Length), lengths);

            var e = Assert.Throws<ArgumentException>(() => new SequenceClassificationData(train, labels.Take(29).ToList(), validation, validationLabels, 3, 0));
            Assert.Contains("trainLabels has 29 labels for 30 sequences", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => new SequenceClassificationData(train, labels, validation, validationLabels, 2, 0));
        }

        [Fact]
        public void Classification_score_counts_accuracy_balanced_accuracy_and_the_majority_baseline()
        {
            var labels = new[] { 0, 0, 0, 0, 1, 1, 2, 2 };
            var predicted = new[] { 0, 0, 0, 1, 1, 0, 2, 0 };
            var score = ClassificationScore.Of(labels, predicted, 3, baselineLabels: new[] { 1, 1, 1, 0 });
            Assert.Equal(5.0 / 8, score.Accuracy, 12);
            Assert.Equal((3.0 / 4 + 1.0 / 2 + 1.0 / 2) / 3, score.BalancedAccuracy, 12);
            Assert.Equal(2.0 / 8, score.MajorityBaseline, 12); // class 1, the training majority, is 2 of the 8 labels
            Assert.Equal(1, score.Confusion[0, 1]);
            Assert.Equal(4.0 / 8, ClassificationScore.Of(labels, predicted, 3).MajorityBaseline, 12);
        }

        // ------------------------------------------------------------------------------------------------------
        // The KJV books of the example
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Kjv_verse_counts_of_the_eight_books_sum_to_the_corpus_lines_and_each_book_starts_where_expected()
        {
            string corpus = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "kjv.txt"));
            Assert.Equal(7213, KjvBooks.Books.Sum(b => b.Verses));
            var labelled = KjvBooks.Label(corpus);
            Assert.Equal(7213, labelled.Length);
            Assert.Equal(corpus.Count(c => c == '\n'), labelled.Length);
            int first = 0;
            var openings = new[]
            {
                "In the beginning God created", "Now these are the names of the children of Israel", "And the LORD called unto Moses",
                "And the LORD spake unto Moses in the wilderness of Sinai", "These be the words which Moses spake",
                "Now after the death of Moses", "Now after the death of Joshua", "Now it came to pass in the days when the judges ruled",
            };
            for (int book = 0; book < KjvBooks.Books.Count; book++)
            {
                Assert.StartsWith(openings[book], labelled[first].Verse);
                Assert.Equal(book, labelled[first].Book);
                first += KjvBooks.Books[book].Verses;
            }
            Assert.Equal("And Obed begat Jesse, and Jesse begat David.", labelled[^1].Verse);

            var (train, heldOut) = KjvBooks.Split(labelled);
            Assert.Equal(labelled.Length, train.Length + heldOut.Length);
            for (int book = 0; book < KjvBooks.Books.Count; book++)
            {
                double share = (double)heldOut.Count(v => v.Book == book) / KjvBooks.Books[book].Verses;
                log.WriteLine($"{KjvBooks.Books[book].Name}: {share:P1} held out");
                Assert.InRange(share, 0.15, 0.25);
            }

            var e = Assert.Throws<InvalidOperationException>(() => KjvBooks.Label(corpus + "One verse too many.\n"));
            Assert.Contains("The corpus has 7214 verses, but Genesis to Ruth have 7213", e.Message);
        }
    }
}
