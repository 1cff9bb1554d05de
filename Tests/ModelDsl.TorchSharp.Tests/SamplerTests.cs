using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    public sealed class SamplerTests
    {
        public SamplerTests() => TorchSharpRuntime.EnsureLoaded();

        private static long[] Ids(Tensor t) => t.data<long>().ToArray();

        private static Tensor RandomLogits(int seed, long batch = 4, long vocab = 50)
        {
            using var g = new Generator((ulong)seed);
            return torch.randn(new[] { batch, vocab }, generator: g);
        }

        [Fact]
        public void Vocabulary_limits_the_ids_even_when_padding_rows_are_the_most_likely()
        {
            using var scope = torch.NewDisposeScope();
            // Rows 0..9 are the tokenizer's, 10..11 are padding whose logits are the largest.
            var logits = torch.cat(new[] { torch.zeros(64, 10), torch.full(64, 2, 5.0f) }, 1);
            using var generator = new Generator(7);

            var greedy = Ids(Sampler.Sample(logits, new SamplingOptions(Temperature: 0, Vocabulary: 10), null));
            var sampled = Ids(Sampler.Sample(logits, new SamplingOptions(Temperature: 1, Vocabulary: 10), generator));

            Assert.All(greedy, id => Assert.InRange(id, 0, 9));
            Assert.All(sampled, id => Assert.InRange(id, 0, 9));
            Assert.Contains(Ids(Sampler.Sample(logits, new SamplingOptions(Temperature: 0), null)), id => id >= 10);
            Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions(Vocabulary: 0));
        }

        [Fact]
        public void Greedy_equals_argmax()
        {
            using var logits = RandomLogits(1);
            using var ids = Sampler.Sample(logits, new SamplingOptions(Temperature: 0), null);
            Assert.Equal(ScalarType.Int64, ids.dtype);
            Assert.Equal(new long[] { 4 }, ids.shape);
            Assert.Equal(Ids(logits.argmax(-1)), Ids(ids));
        }

        [Fact]
        public void TopK_1_equals_argmax()
        {
            using var logits = RandomLogits(2);
            using var g = new Generator(3);
            for (int i = 0; i < 20; i++)
            {
                using var ids = Sampler.Sample(logits, new SamplingOptions(Temperature: 1.5f, TopK: 1), g);
                Assert.Equal(Ids(logits.argmax(-1)), Ids(ids));
            }
        }

        [Fact]
        public void TopK_restricts_the_support()
        {
            using var logits = RandomLogits(4, batch: 3, vocab: 40);
            var (_, top) = torch.topk(logits, 5, dim: -1);
            var allowed = Enumerable.Range(0, 3).Select(r => top[r].data<long>().ToHashSet()).ToArray();
            var seen = Enumerable.Range(0, 3).Select(_ => new HashSet<long>()).ToArray();
            using var g = new Generator(5);
            for (int i = 0; i < 400; i++)
            {
                using var ids = Sampler.Sample(logits, new SamplingOptions(Temperature: 2f, TopK: 5), g);
                var values = Ids(ids);
                for (int r = 0; r < 3; r++)
                {
                    Assert.Contains(values[r], allowed[r]);
                    seen[r].Add(values[r]);
                }
            }
            Assert.All(seen, s => Assert.True(s.Count > 1, "top-k sampling should not collapse to one token at T=2"));
        }

        [Fact]
        public void TopP_keeps_the_smallest_nucleus()
        {
            // probs [0.5, 0.3, 0.15, 0.05]: cumulative 0.5, 0.8 -> TopP 0.8 keeps {0, 1}.
            using var logits = torch.log(torch.tensor(new[] { 0.15f, 0.5f, 0.05f, 0.3f })).unsqueeze(0); // shuffled order
            using var g = new Generator(11);
            var counts = new int[4];
            for (int i = 0; i < 2000; i++)
            {
                using var ids = Sampler.Sample(logits, new SamplingOptions(TopP: 0.8f), g);
                counts[ids[0].item<long>()]++;
            }
            Assert.Equal(0, counts[0]);
            Assert.Equal(0, counts[2]);
            Assert.True(counts[1] > 0 && counts[3] > 0);
            double share = counts[1] / 2000.0; // renormalised: 0.5 / 0.8 = 0.625
            Assert.InRange(share, 0.57, 0.68);

            // Just above 0.8, the third token joins; a tiny TopP keeps only the top token.
            var third = new HashSet<long>();
            for (int i = 0; i < 2000; i++)
            {
                using var ids = Sampler.Sample(logits, new SamplingOptions(TopP: 0.81f), g);
                third.Add(ids[0].item<long>());
            }
            Assert.Equal(new long[] { 0, 1, 3 }, third.OrderBy(x => x));
            for (int i = 0; i < 50; i++)
            {
                using var ids = Sampler.Sample(logits, new SamplingOptions(TopP: 0.01f), g);
                Assert.Equal(1L, ids[0].item<long>());
            }
        }

        [Fact]
        public void Same_seed_gives_same_samples()
        {
            using var logits = RandomLogits(6, batch: 2, vocab: 100);
            var options = new SamplingOptions(Temperature: 0.9f, TopK: 20, TopP: 0.95f, Seed: 42);
            long[] Run()
            {
                using var g = new Generator(42);
                var all = new List<long>();
                for (int i = 0; i < 30; i++)
                {
                    using var ids = Sampler.Sample(logits, options, g);
                    all.AddRange(Ids(ids));
                }
                return all.ToArray();
            }
            var first = Run();
            Assert.Equal(first, Run());
            Assert.True(first.Distinct().Count() > 2);
        }

        [Fact]
        public void Invalid_options_throw()
        {
            Assert.Contains("emperature", Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions(Temperature: -0.1f)).Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions(Temperature: float.NaN));
            Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions(Temperature: float.PositiveInfinity));
            Assert.Contains("TopK", Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions(TopK: -1)).Message);
            Assert.Contains("TopP", Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions(TopP: 0f)).Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions(TopP: 1.01f));
            Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions() with { TopP = -1f });
            Assert.Equal(0.5f, (new SamplingOptions() with { TopP = 0.5f }).TopP);
        }

        [Fact]
        public void Bad_logits_throw()
        {
            var options = new SamplingOptions();
            Assert.Throws<ArgumentException>(() => Sampler.Sample(torch.zeros(5), options, null));
            Assert.Throws<ArgumentException>(() => Sampler.Sample(torch.zeros(new long[] { 2, 0 }), options, null));
            Assert.Throws<ArgumentException>(() => Sampler.Sample(torch.zeros(new long[] { 2, 3 }, ScalarType.Int64), options, null));
            Assert.Throws<ArgumentException>(() => Sampler.Sample(torch.full(1, 3, float.NaN), options, null));
            Assert.Throws<ArgumentException>(() => Sampler.Sample(torch.full(1, 3, float.NegativeInfinity), options, null));
        }

        [Fact]
        public void Low_precision_logits_and_large_TopK_work()
        {
            using var logits = RandomLogits(8).to(ScalarType.BFloat16);
            using var g = new Generator(1);
            using var ids = Sampler.Sample(logits, new SamplingOptions(TopK: 1000, TopP: 0.9f), g);
            Assert.All(Ids(ids), id => Assert.InRange(id, 0, 49));
        }
    }
}
