using System;
using System.Linq;
using ILGPU.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// The sum of squares against float64, AdamW against TorchSharp's torch.optim.AdamW after nn.utils.clip_grad_norm_ on the
    /// same float32 tensors, step by step. The optimizer has no gradient of its own, so its reference is libtorch's
    /// optimizer, not finite differences. Tolerance for AdamW 1e-6 of the parameter scale after 6 steps: both sides
    /// compute in float32 in the same order, so only a few roundings (libtorch may fuse multiply-adds) differ per step.
    /// </summary>
    public sealed class OptimizerKernelTests(ITestOutputHelper output)
    {
        [Theory]
        [InlineData(1)]
        [InlineData(1000)]
        [InlineData(10000)] // 3 chunks of 4096, the last one partial
        public void Sum_of_squares_matches_float64(int length)
        {
            var values = Randn(length, length) * 2;
            using var device = Upload(values);
            using var result = Zeros(1);
            Gpu.SumOfSquares(result.View, device.View);
            var first = Download(result.View);
            AssertNear(F64(values).square().sum().reshape(1), first, 1e-6, $"sum of {length} squares", output);
            Gpu.SumOfSquares(result.View, device.View);
            AssertBitIdentical(first, Download(result.View), "sum of squares");
        }

        /// <summary>Two parameter groups (a decayed matrix and a bias without decay), six steps; max norm 0 and infinity turn clipping off.</summary>
        [Theory]
        [InlineData(1.0f)]
        [InlineData(0f)]
        [InlineData(float.PositiveInfinity)]
        public void AdamW_matches_libtorch_with_clipping_step_by_step(float maxGradNorm)
        {
            const float lr = 0.01f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weightDecay = 0.1f;
            var weight = new Parameter(Randn(1, 4, 5));
            var bias = new Parameter(Randn(2, 7));
            var optimizer = optim.AdamW(new[]
            {
                new AdamW.ParamGroup(new[] { weight }, lr, beta1, beta2, eps, weightDecay),
                new AdamW.ParamGroup(new[] { bias }, lr, beta1, beta2, eps, 0.0),
            }, lr, beta1, beta2, eps);

            using var parameters = Upload(cat(new[] { weight.detach().reshape(-1), bias.detach() }));
            using var gradients = Zeros(27);
            using var m = Zeros(27);
            using var v = Zeros(27);
            using var sumOfSquares = Zeros(1);
            bool clipped = false, unclipped = false;
            for (int step = 1; step <= 6; step++)
            {
                // gradient norms from about 0.2 to 6: clipping at 1 happens in some steps and not in others
                var gw = Randn(10 + step, 4, 5) * (0.05 * step * step);
                var gb = Randn(20 + step, 7) * (0.05 * step * step);
                ((weight * gw).sum() + (bias * gb).sum()).backward();
                double norm = Math.Sqrt(gw.square().sum().item<float>() + gb.square().sum().item<float>());
                bool clipping = maxGradNorm > 0 && !float.IsInfinity(maxGradNorm);
                clipped |= clipping && norm > maxGradNorm;
                unclipped |= clipping && norm < maxGradNorm;
                if (clipping) nn.utils.clip_grad_norm_(new[] { weight, bias }, maxGradNorm);
                optimizer.step();
                optimizer.zero_grad();

                gradients.View.CopyFromCPU(Floats(cat(new[] { gw.reshape(-1), gb })));
                Gpu.SumOfSquares(sumOfSquares.View, gradients.View);
                Gpu.AdamW(parameters.View, gradients.View, m.View, v.View, sumOfSquares.View,
                    new AdamWStep(lr, beta1, beta2, eps, weightDecay, step, maxGradNorm, DecayedCount: 20));
                AssertNear(cat(new[] { weight.detach().reshape(-1), bias.detach() }), Download(parameters.View), 1e-6, $"parameters after step {step}", output);
            }
            if (maxGradNorm == 1.0f) Assert.True(clipped && unclipped, $"the gradient norms should cross the maximum (clipped: {clipped}, unclipped: {unclipped})");
        }

        [Fact]
        public void Moments_follow_their_recurrences()
        {
            // m and v after two steps without clipping, from the elementary recurrences in float64
            var g1 = Randn(31, 9);
            var g2 = Randn(32, 9);
            using var parameters = Zeros(9);
            using var gradients = Upload(g1);
            using var m = Zeros(9);
            using var v = Zeros(9);
            using var sumOfSquares = Zeros(1);
            var step = new AdamWStep(0.1f, 0.8f, 0.9f, 1e-8f, 0f, 1, 0f, 0);
            Gpu.AdamW(parameters.View, gradients.View, m.View, v.View, sumOfSquares.View, step);
            gradients.View.CopyFromCPU(Floats(g2));
            Gpu.AdamW(parameters.View, gradients.View, m.View, v.View, sumOfSquares.View, step with { Step = 2 });
            AssertNear(0.8 * 0.2 * F64(g1) + 0.2 * F64(g2), Download(m.View), 1e-6, "m", output);
            AssertNear(0.9 * 0.1 * F64(g1).square() + 0.1 * F64(g2).square(), Download(v.View), 1e-6, "v", output);
        }

        [Fact]
        public void Scale_and_fill()
        {
            using var values = Upload(new[] { 1f, -2f, 3f });
            Gpu.Scale(values.View, 0.5f);
            Assert.Equal(new[] { 0.5f, -1f, 1.5f }, Download(values.View));
            Gpu.Fill(values.View, 7f);
            Assert.Equal(new[] { 7f, 7f, 7f }, Download(values.View));
        }

        [Fact]
        public void Launchers_name_the_wrong_argument()
        {
            using var four = Zeros(4);
            using var three = Zeros(3);
            using var one = Zeros(1);
            var step = new AdamWStep(0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 1, 1f, 4);
            var e = Assert.Throws<ArgumentException>(() => Gpu.AdamW(four.View, four.View, three.View, four.View, one.View, step));
            Assert.Contains("AdamW: m has 3 elements, the output 4", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.AdamW(four.View, four.View, four.View, four.View, default, step));
            Assert.Contains("AdamW: sumOfSquares has 0 elements, at least 1 needed", e.Message);
            var range = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.AdamW(four.View, four.View, four.View, four.View, one.View, step with { DecayedCount = 5 }));
            Assert.Contains("AdamW: step.DecayedCount must be in [0, 4]", range.Message);
            range = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.AdamW(four.View, four.View, four.View, four.View, one.View, step with { Step = 0 }));
            Assert.Contains("AdamW: step.Step must be positive", range.Message);
            range = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.AdamW(four.View, four.View, four.View, four.View, one.View, step with { Beta2 = 1f }));
            Assert.Contains("AdamW: step.Beta2 must be in [0, 1)", range.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.SumOfSquares(default, four.View));
            Assert.Contains("SumOfSquares: result has 0 elements, at least 1 needed", e.Message);
        }
    }
}
