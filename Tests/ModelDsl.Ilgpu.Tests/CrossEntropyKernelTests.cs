using System;
using System.Linq;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// Cross-entropy against torch.nn.functional.cross_entropy (mean, ignore_index -100) and logsumexp in float64 on the
    /// same float32 logits, the gradient against autograd and finite differences. Tolerance 1e-5 of the reference scale:
    /// the loss is lse - x_t, a difference of values as large as the logits (up to ~100 here, float32 ulp 8e-6).
    /// </summary>
    public sealed class CrossEntropyKernelTests(ITestOutputHelper output)
    {
        private const double Tolerance = 1e-5;

        /// <summary>(rows, classes, logit offset): 1 row; classes over one group's stride; logits where exp overflows float32.</summary>
        public static TheoryData<int, int, float> Cases => new() { { 1, 7, 0f }, { 5, 300, 0f }, { 3, 1000, 100f }, { 9, 33, -50f } };

        [Theory, MemberData(nameof(Cases))]
        public void Loss_and_gradient_match_libtorch_and_autograd(int rows, int classes, float offset)
        {
            var logits = Randn(rows, rows, classes) * 3 + offset;
            var targets = Targets(rows, classes, seed: classes);
            const float dLoss = 0.7f;
            int counted = targets.Count(t => t != Kernels.IgnoreIndex);
            var run = Run(logits, targets, dLoss / counted, initialGradient: 0.125f);

            var xr = Leaf(logits);
            var reference = nn.functional.cross_entropy(xr, tensor(targets.Select(t => (long)t).ToArray()));
            (reference * dLoss).backward();
            AssertNear(reference, run.Loss, Tolerance, "cross_entropy", output);
            AssertNear(F64(logits).logsumexp(-1), run.Lse, Tolerance, "logsumexp", output);
            AssertNear(GradOf(xr) + 0.125, run.DLogits, Tolerance, "dLogits + 0.125", output);
        }

        [Fact]
        public void Gradient_matches_finite_differences_and_skips_ignored_rows()
        {
            var logits = Randn(3, 3, 5);
            var targets = new[] { 4, Kernels.IgnoreIndex, 0 };
            var run = Run(logits, targets, scale: 1f / 2, initialGradient: 0f);
            var index = tensor(targets.Select(t => (long)t).ToArray());
            AssertNear(FiniteDifferences(v => nn.functional.cross_entropy(v, index).item<double>(), logits), run.DLogits, Tolerance,
                "dLogits vs finite differences", output);
            Assert.All(run.DLogits.Skip(5).Take(5), g => Assert.Equal(0f, g));
        }

        [Fact]
        public void Every_row_ignored_gives_NaN_like_libtorch()
        {
            var logits = Randn(4, 2, 6);
            var targets = new[] { Kernels.IgnoreIndex, Kernels.IgnoreIndex };
            var reference = nn.functional.cross_entropy(logits, tensor(new long[] { -100, -100 })).item<float>();
            Assert.True(float.IsNaN(reference), $"libtorch gave {reference}");
            var run = Run(logits, targets, scale: 1f, initialGradient: 0.5f);
            Assert.True(float.IsNaN(run.Loss[0]), $"the kernel gave {run.Loss[0]}");
            Assert.All(run.DLogits, g => Assert.Equal(0.5f, g)); // nothing to add
        }

        [Fact]
        public void A_target_outside_the_classes_gives_NaN_instead_of_reading_out_of_bounds()
        {
            var run = Run(Randn(5, 2, 6), new[] { 1, 6 }, scale: 0.5f, initialGradient: 0f);
            Assert.True(float.IsNaN(run.Loss[0]));
            Assert.All(run.DLogits.Take(6), g => Assert.False(float.IsNaN(g)));
            Assert.All(run.DLogits.Skip(6), g => Assert.True(float.IsNaN(g)));
        }

        [Fact]
        public void Masked_logits_add_nothing()
        {
            // -inf logits (a padded vocabulary) must not turn the sum into NaN, wherever they fall in a thread's stride.
            var logits = Randn(6, 2, 600);
            logits.index_fill_(1, arange(0, 600, 2), float.NegativeInfinity);
            var targets = new[] { 1, 599 };
            var run = Run(logits, targets, scale: 0.5f, initialGradient: 0f);
            var reference = nn.functional.cross_entropy(F64(logits), tensor(new long[] { 1, 599 }));
            AssertNear(reference, run.Loss, Tolerance, "cross_entropy with masked logits", output);
        }

        [Fact]
        public void Loss_is_bit_identical_across_runs()
        {
            var logits = Randn(7, 6, 300);
            var targets = Targets(6, 300, seed: 1);
            var first = Run(logits, targets, 0.05f, 0f);
            var second = Run(logits, targets, 0.05f, 0f);
            AssertBitIdentical(first.Loss, second.Loss, "loss");
            AssertBitIdentical(first.Lse, second.Lse, "lse");
        }

        [Fact]
        public void Launchers_name_the_wrong_argument()
        {
            using var six = Zeros(6);
            using var two = Zeros(2);
            using var targets = Upload(new[] { 0, 1 });
            var e = Assert.Throws<ArgumentException>(() => Gpu.CrossEntropyForward(two.View, two.View, six.View, targets.View, 2, 4));
            Assert.Contains("CrossEntropyForward: logits has 6 elements, at least 8 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.CrossEntropyForward(two.View, two.View, six.View, targets.View, 3, 2));
            Assert.Contains("CrossEntropyForward: lse has 2 elements, at least 3 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.CrossEntropyBackward(two.View, six.View, two.View, targets.View, 2, 3, 1f));
            Assert.Contains("CrossEntropyBackward: dLogits has 2 elements, at least 6 needed", e.Message);
        }

        private static int[] Targets(int rows, int classes, int seed)
        {
            var random = new Random(seed);
            var targets = Enumerable.Range(0, rows).Select(_ => random.Next(classes)).ToArray();
            if (rows > 2) targets[1] = Kernels.IgnoreIndex;
            if (rows > 3) targets[^1] = classes - 1;
            return targets;
        }

        private sealed record CrossEntropyRun(float[] Loss, float[] Lse, float[] DLogits);

        private static CrossEntropyRun Run(Tensor logits, int[] targets, float scale, float initialGradient)
        {
            int rows = (int)logits.shape[0], classes = (int)logits.shape[1];
            using var x = Upload(logits);
            using var t = Upload(targets);
            using var loss = Zeros(1);
            using var lse = Zeros(rows);
            using var dLogits = Filled((long)rows * classes, initialGradient);
            Gpu.CrossEntropyForward(loss.View, lse.View, x.View, t.View, rows, classes);
            Gpu.CrossEntropyBackward(dLogits.View, x.View, lse.View, t.View, rows, classes, scale);
            return new CrossEntropyRun(Download(loss.View), Download(lse.View), Download(dLogits.View));
        }
    }
}
