using System;
using System.Linq;
using System.Threading;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>Issue 9's run-time side: every path of sampling, caching, loss and generation refuses what it cannot do.</summary>
    public sealed class RuntimeGuardTests
    {
        [Fact]
        public void Greedy_decoding_refuses_NaN_logits_instead_of_returning_token_0()
        {
            var logits = torch.tensor(new float[] { float.NaN, 1, 2 }).view(1, 3);
            var e = Assert.Throws<ArgumentException>(() => Sampler.Sample(logits, new SamplingOptions(Temperature: 0), null));
            Assert.Contains("NaN", e.Message);
        }

        [Fact]
        public void A_tiny_top_p_keeps_the_most_likely_token()
        {
            var logits = torch.tensor(new float[] { 0, 3, 1 }).view(1, 3);
            using var generator = new Generator(1);
            for (int i = 0; i < 5; i++)
                Assert.Equal(1L, Sampler.Sample(logits, new SamplingOptions(TopP: 1e-9f), generator)[0].item<long>());
        }

        [Fact]
        public void A_cache_of_another_batch_size_or_model_is_refused_by_name()
        {
            using var model = TinyGpt.CreateTorchSharp();
            using var other = TinyUntiedReluGpt.CreateTorchSharp();
            var ids = torch.zeros(new long[] { 2, 3 }, ScalarType.Int64);
            using var forOne = model.CreateCache(1);
            var batch = Assert.Throws<ArgumentException>(() => model.Forward(ids, forOne));
            Assert.Contains("1 sequence(s)", batch.Message);
            Assert.Contains("TinyGpt", batch.Message);
            using var foreign = other.CreateCache(2);
            var wrongModel = Assert.Throws<ArgumentException>(() => model.Forward(ids, foreign));
            Assert.Contains("TinyUntiedReluGpt", wrongModel.Message);
        }

        [Fact]
        public void A_loss_whose_targets_are_all_ignored_is_an_error_not_NaN()
        {
            using var model = TinyGpt.CreateTorchSharp();
            var ids = torch.tensor(new long[] { 1, 2, 3 }).view(1, 3);
            var e = Assert.Throws<ArgumentException>(() => model.Loss(ids, torch.full(new long[] { 1, 3 }, -100L, ScalarType.Int64)));
            Assert.Contains("every target", e.Message);
        }

        [Fact]
        public void Generation_stops_when_cancelled()
        {
            using var model = TinyGpt.CreateTorchSharp();
            using var cancellation = new CancellationTokenSource();
            cancellation.Cancel();
            Assert.Throws<OperationCanceledException>(() => model.Generate(new[] { 1, 2 }, 10, new SamplingOptions(Temperature: 0), cancellation.Token));
            Assert.Equal(12, model.Generate(new[] { 1, 2 }, 10, new SamplingOptions(Temperature: 0), CancellationToken.None).Length);
        }
    }
}
