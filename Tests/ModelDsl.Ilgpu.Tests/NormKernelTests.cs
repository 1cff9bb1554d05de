using System;
using ILGPU;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// LayerNorm against torch.nn.functional.layer_norm and RMSNorm against its elementary formula, both in float64 on the
    /// same float32 inputs, gradients against libtorch autograd and central finite differences. Tolerance 1e-5 of the
    /// reference scale: one float32 rounding per step of a row reduction over at most 70 terms.
    /// </summary>
    public sealed class NormKernelTests(ITestOutputHelper output)
    {
        private const float Epsilon = 1e-5f;
        private const double Tolerance = 1e-5;

        // 1 row; a row shorter than a warp; rows not a multiple of 8 with channels not a multiple of 32; 70 rows: 9 groups,
        // 2 row chunks of the parameter gradients (64 rows each), 2 channel blocks.
        public static TheoryData<int, int, bool> Shapes => new() { { 1, 7, true }, { 5, 45, true }, { 70, 33, true }, { 3, 40, false } };

        [Theory, MemberData(nameof(Shapes))]
        public void LayerNorm_matches_libtorch_forward_and_autograd(int rows, int channels, bool withBias)
        {
            var x = Randn(1, rows, channels) * 2 + 0.5;
            var w = Randn(2, channels);
            var b = withBias ? Randn(3, channels) : null;
            var dy = Randn(4, rows, channels);
            var run = RunLayerNorm(x, w, b, dy, initialGradient: 0.25f);

            var xr = Leaf(x);
            var wr = Leaf(w);
            var br = b is null ? null : Leaf(b);
            var y = nn.functional.layer_norm(xr, new long[] { channels }, wr, br, Epsilon);
            y.backward(new[] { F64(dy) });
            var (variance, mean) = var_mean(F64(x), -1, unbiased: false);
            AssertNear(y, run.Output, Tolerance, "layer_norm", output);
            AssertNear(mean, run.Mean, Tolerance, "mean", output);
            AssertNear(1 / sqrt(variance + Epsilon), run.Rstd, Tolerance, "rstd", output);
            // backward accumulates: the buffers started at 0.25
            AssertNear(GradOf(xr) + 0.25, run.DInput, Tolerance, "dInput + 0.25", output);
            AssertNear(GradOf(wr) + 0.25, run.DWeight, Tolerance, "dWeight + 0.25", output);
            if (br is not null) AssertNear(GradOf(br) + 0.25, run.DBias!, Tolerance, "dBias + 0.25", output);
        }

        [Fact]
        public void LayerNorm_backward_matches_finite_differences()
        {
            var x = Randn(5, 3, 7);
            var w = Randn(6, 7);
            var b = Randn(7, 7);
            var dy = Randn(8, 3, 7);
            var run = RunLayerNorm(x, w, b, dy, initialGradient: 0f);
            double Loss(Tensor x64, Tensor w64, Tensor b64) => Dot(nn.functional.layer_norm(x64, new long[] { 7 }, w64, b64, Epsilon), F64(dy));
            AssertNear(FiniteDifferences(v => Loss(v, F64(w), F64(b)), x), run.DInput, Tolerance, "dInput vs finite differences", output);
            AssertNear(FiniteDifferences(v => Loss(F64(x), v, F64(b)), w), run.DWeight, Tolerance, "dWeight vs finite differences", output);
            AssertNear(FiniteDifferences(v => Loss(F64(x), F64(w), v), b), run.DBias!, Tolerance, "dBias vs finite differences", output);
        }

        [Theory, MemberData(nameof(Shapes))]
        public void RmsNorm_matches_the_elementary_formula_and_autograd(int rows, int channels, bool unused)
        {
            _ = unused;
            var x = Randn(11, rows, channels) * 2 + 0.5;
            var w = Randn(12, channels);
            var dy = Randn(13, rows, channels);
            var run = RunRmsNorm(x, w, dy, initialGradient: -0.5f);

            var xr = Leaf(x);
            var wr = Leaf(w);
            var y = RmsNorm(xr, wr);
            y.backward(new[] { F64(dy) });
            AssertNear(y, run.Output, Tolerance, "rms_norm", output);
            AssertNear(rsqrt(F64(x).square().mean(new long[] { -1 }) + Epsilon), run.Rstd, Tolerance, "rstd", output);
            AssertNear(GradOf(xr) - 0.5, run.DInput, Tolerance, "dInput - 0.5", output);
            AssertNear(GradOf(wr) - 0.5, run.DWeight, Tolerance, "dWeight - 0.5", output);
        }

        [Fact]
        public void RmsNorm_backward_matches_finite_differences()
        {
            var x = Randn(14, 3, 7);
            var w = Randn(15, 7);
            var dy = Randn(16, 3, 7);
            var run = RunRmsNorm(x, w, dy, initialGradient: 0f);
            AssertNear(FiniteDifferences(v => Dot(RmsNorm(v, F64(w)), F64(dy)), x), run.DInput, Tolerance, "dInput vs finite differences", output);
            AssertNear(FiniteDifferences(v => Dot(RmsNorm(F64(x), v), F64(dy)), w), run.DWeight, Tolerance, "dWeight vs finite differences", output);
        }

        [Fact]
        public void Backward_passes_are_bit_identical_across_runs()
        {
            var x = Randn(17, 70, 33);
            var w = Randn(18, 33);
            var dy = Randn(19, 70, 33);
            var first = RunLayerNorm(x, w, w, dy, 0f);
            var second = RunLayerNorm(x, w, w, dy, 0f);
            AssertBitIdentical(first.DInput, second.DInput, "dInput");
            AssertBitIdentical(first.DWeight, second.DWeight, "dWeight");
            AssertBitIdentical(first.DBias!, second.DBias!, "dBias");
        }

        [Fact]
        public void Launchers_name_the_wrong_argument()
        {
            using var rows2x4 = Zeros(8);
            using var short7 = Zeros(7);
            using var four = Zeros(4);
            using var two = Zeros(2);
            using var one = Zeros(1);
            var e = Assert.Throws<ArgumentException>(() => Gpu.LayerNormForward(rows2x4.View, two.View, two.View, short7.View, four.View, default, 2, 4, Epsilon));
            Assert.Contains("LayerNormForward: input has 7 elements, at least 8 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.LayerNormForward(rows2x4.View, one.View, two.View, rows2x4.View, four.View, default, 2, 4, Epsilon));
            Assert.Contains("LayerNormForward: mean has 1 elements, at least 2 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.LayerNormForward(rows2x4.View, two.View, two.View, rows2x4.View, four.View, two.View, 2, 4, Epsilon));
            Assert.Contains("LayerNormForward: bias has 2 elements, at least 4 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.LayerNormBackward(rows2x4.View, two.View, default, rows2x4.View, rows2x4.View, four.View, two.View, two.View, 2, 4));
            Assert.Contains("LayerNormBackward: dWeight has 2 elements, at least 4 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.RmsNormForward(rows2x4.View, two.View, rows2x4.View, two.View, 2, 4, Epsilon));
            Assert.Contains("RmsNormForward: weight has 2 elements, at least 4 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.RmsNormBackward(short7.View, four.View, rows2x4.View, rows2x4.View, four.View, two.View, 2, 4));
            Assert.Contains("RmsNormBackward: dInput has 7 elements, at least 8 needed", e.Message);
            var range = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.RmsNormForward(rows2x4.View, two.View, rows2x4.View, four.View, 0, 4, Epsilon));
            Assert.Contains("RmsNormForward: rows must be positive", range.Message);
            range = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.LayerNormForward(rows2x4.View, two.View, two.View, rows2x4.View, four.View, default, 2, 4, -1f));
            Assert.Contains("LayerNormForward: epsilon must be a finite number >= 0", range.Message);
        }

        private static Tensor RmsNorm(Tensor x, Tensor w) => x * rsqrt(x.square().mean(new long[] { -1 }, keepdim: true) + Epsilon) * w;

        private sealed record NormRun(float[] Output, float[] Mean, float[] Rstd, float[] DInput, float[] DWeight, float[]? DBias);

        private static NormRun RunLayerNorm(Tensor x, Tensor w, Tensor? b, Tensor dy, float initialGradient)
        {
            int rows = (int)x.shape[0], channels = (int)x.shape[1];
            using var input = Upload(x);
            using var weight = Upload(w);
            using var bias = b is null ? null : Upload(b);
            using var y = Zeros(rows * channels);
            using var mean = Zeros(rows);
            using var rstd = Zeros(rows);
            using var dOutput = Upload(dy);
            using var dInput = Filled(rows * channels, initialGradient);
            using var dWeight = Filled(channels, initialGradient);
            using var dBias = Filled(channels, initialGradient);
            var biasView = bias is null ? default : bias.View;
            Gpu.LayerNormForward(y.View, mean.View, rstd.View, input.View, weight.View, biasView, rows, channels, Epsilon);
            Gpu.LayerNormBackward(dInput.View, dWeight.View, bias is null ? default : dBias.View, dOutput.View, input.View, weight.View,
                mean.View, rstd.View, rows, channels);
            return new NormRun(Download(y.View), Download(mean.View), Download(rstd.View), Download(dInput.View), Download(dWeight.View),
                bias is null ? null : Download(dBias.View));
        }

        private static NormRun RunRmsNorm(Tensor x, Tensor w, Tensor dy, float initialGradient)
        {
            int rows = (int)x.shape[0], channels = (int)x.shape[1];
            using var input = Upload(x);
            using var weight = Upload(w);
            using var y = Zeros(rows * channels);
            using var rstd = Zeros(rows);
            using var dOutput = Upload(dy);
            using var dInput = Filled(rows * channels, initialGradient);
            using var dWeight = Filled(channels, initialGradient);
            Gpu.RmsNormForward(y.View, rstd.View, input.View, weight.View, rows, channels, Epsilon);
            Gpu.RmsNormBackward(dInput.View, dWeight.View, dOutput.View, input.View, weight.View, rstd.View, rows, channels);
            return new NormRun(Download(y.View), Array.Empty<float>(), Download(rstd.View), Download(dInput.View), Download(dWeight.View), null);
        }
    }
}
