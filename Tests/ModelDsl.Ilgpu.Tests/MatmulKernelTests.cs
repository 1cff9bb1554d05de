using System;
using ILGPU;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// The tiled matrix product and the bias gradient against libtorch in float64. Tolerance: the classical bound on a
    /// float32 dot product of length k, |fl(sum) - sum| &lt;= gamma_k sum |a_i b_i| with gamma_k = k u / (1 - k u),
    /// u = 2^-24 (Higham, Accuracy and Stability, 3.1), taken element by element with k + 2 for the bias and the
    /// accumulated value: it grows with k and with the magnitudes actually summed, and any wrong term breaks it.
    /// </summary>
    public sealed class MatmulKernelTests
    {
        private readonly ITestOutputHelper log;

        public MatmulKernelTests(ITestOutputHelper log) => this.log = log;

        [Theory]
        [InlineData(1, 1, 1)]
        [InlineData(1, 7, 1)]
        [InlineData(67, 33, 45)]
        [InlineData(65, 65, 17)]
        public void Matmul_matches_torch_matmul_in_every_layout(int m, int n, int k)
        {
            double worst = 0;
            foreach (bool transposeA in new[] { false, true })
            foreach (bool transposeB in new[] { false, true })
            foreach (bool epilogue in new[] { false, true }) // bias and accumulate together; each alone: the linear layer test
            {
                bool withBias = epilogue, accumulate = epilogue;
                long seed = 100 * m + 10 * n + k + (transposeA ? 1000 : 0) + (transposeB ? 2000 : 0);
                var a = transposeA ? Randn(seed, k, m) : Randn(seed, m, k);
                var b = transposeB ? Randn(seed + 1, n, k) : Randn(seed + 1, k, n);
                var bias = Randn(seed + 2, n);
                var c0 = accumulate ? Randn(seed + 3, m, n) : zeros(m, n);
                using var da = Upload(a);
                using var db = Upload(b);
                using var dBias = Upload(bias);
                using var dc = Upload(accumulate ? c0 : full(m, n, float.NaN)); // without accumulate the old c must not matter

                Gpu.Matmul(dc.View, da.View, db.View, withBias ? dBias.View : default, m, n, k, transposeA, transposeB, accumulate);

                var opA = (transposeA ? a.t() : a).to_type(ScalarType.Float64);
                var opB = (transposeB ? b.t() : b).to_type(ScalarType.Float64);
                var bias64 = withBias ? bias.to_type(ScalarType.Float64) : zeros(n, dtype: ScalarType.Float64);
                var expected = c0.to_type(ScalarType.Float64) + opA.matmul(opB) + bias64;
                var magnitude = c0.to_type(ScalarType.Float64).abs() + opA.abs().matmul(opB.abs()) + bias64.abs();
                worst = Math.Max(worst, AssertWithinBound(expected, Download(dc.View), Gamma(k + 2) * magnitude,
                    $"{m}x{n}x{k} transposeA={transposeA} transposeB={transposeB} bias={withBias} accumulate={accumulate}"));
            }
            log.WriteLine($"{m}x{n}x{k}: worst error {worst:F3} of the bound");
        }

        /// <summary>
        /// The fused epilogue computes exactly what the unfused pair does: the same tiled sums (so the pre-activation is
        /// bit for bit the plain product's, which the test above checks against libtorch) and the same activation function
        /// on the same float (bit for bit ActivationForward's, which ActivationKernelTests checks against libtorch).
        /// </summary>
        [Theory]
        [InlineData(KernelActivation.GeluTanh, false)]
        [InlineData(KernelActivation.Gelu, true)]
        [InlineData(KernelActivation.Relu, true)]
        [InlineData(KernelActivation.Silu, false)]
        [InlineData(KernelActivation.Tanh, true)]
        public void The_activation_epilogue_equals_the_matmul_then_the_activation_kernel(KernelActivation function, bool transposeB)
        {
            const int m = 67, n = 33, k = 45;
            var a = Randn(1, m, k);
            var b = transposeB ? Randn(2, n, k) : Randn(2, k, n);
            var bias = Randn(3, n);
            using var da = Upload(a);
            using var db = Upload(b);
            using var dBias = Upload(bias);
            using var fused = Upload(full(m, n, float.NaN));
            using var fusedActivated = Upload(full(m, n, float.NaN));
            using var plain = Upload(full(m, n, float.NaN));
            using var plainActivated = Upload(full(m, n, float.NaN));

            Gpu.MatmulActivation(fused.View, fusedActivated.View, function, da.View, db.View, dBias.View, m, n, k, transposeB);
            Gpu.Matmul(plain.View, da.View, db.View, dBias.View, m, n, k, transposeA: false, transposeB, accumulate: false);
            Gpu.ActivationForward(function, plainActivated.View, plain.View);

            Assert.Equal(Download(plain.View), Download(fused.View));
            Assert.Equal(Download(plainActivated.View), Download(fusedActivated.View));
        }

        [Theory]
        [InlineData(1, 5)]
        [InlineData(37, 67)]
        public void BiasBackward_adds_the_column_sums(int rows, int columns)
        {
            var dOutput = Randn(rows + columns, rows, columns);
            var dBias0 = Randn(rows + columns + 1, columns);
            using var dOut = Upload(dOutput);
            using var dBias = Upload(dBias0);
            Gpu.BiasBackward(dBias.View, dOut.View, rows, columns);
            var expected = dBias0.to_type(ScalarType.Float64) + dOutput.to_type(ScalarType.Float64).sum(dim: 0);
            var magnitude = dBias0.to_type(ScalarType.Float64).abs() + dOutput.to_type(ScalarType.Float64).abs().sum(dim: 0);
            double worst = AssertWithinBound(expected, Download(dBias.View), Gamma(rows + 1) * magnitude, $"dBias {rows}x{columns}");
            log.WriteLine($"BiasBackward {rows}x{columns}: worst error {worst:F3} of the bound");
        }

        /// <summary>
        /// The six products of a linear layer, flags as the launcher documents them, against libtorch's autograd of
        /// x W + b (GPT-2's Conv1D, W [in, out]) and F.linear (W [out, in]) in float64, and against central differences.
        /// </summary>
        [Theory]
        [InlineData(false)]
        [InlineData(true)]
        public void Linear_layer_forward_and_backward_match_autograd_and_finite_differences(bool weightOutIn)
        {
            const int rows = 5, inputs = 7, outputs = 3;
            var x = Randn(1, rows, inputs);
            var w = weightOutIn ? Randn(2, outputs, inputs) : Randn(2, inputs, outputs);
            var b = Randn(3, outputs);
            var upstream = Randn(4, rows, outputs);
            var dx0 = Randn(5, rows, inputs);   // gradients accumulate onto what is there
            var dw0 = Randn(6, w.shape);
            var db0 = Randn(7, outputs);
            using var dX = Upload(x);
            using var dW = Upload(w);
            using var dB = Upload(b);
            using var dY = Upload(upstream);
            using var y = Zeros(rows * outputs);
            using var gradX = Upload(dx0);
            using var gradW = Upload(dw0);
            using var gradB = Upload(db0);

            Gpu.Matmul(y.View, dX.View, dW.View, dB.View, rows, outputs, inputs, transposeA: false, transposeB: weightOutIn, accumulate: false);
            Gpu.Matmul(gradX.View, dY.View, dW.View, default, rows, inputs, outputs, transposeA: false, transposeB: !weightOutIn, accumulate: true);
            if (weightOutIn) Gpu.Matmul(gradW.View, dY.View, dX.View, default, outputs, inputs, rows, transposeA: true, transposeB: false, accumulate: true);
            else Gpu.Matmul(gradW.View, dX.View, dY.View, default, inputs, outputs, rows, transposeA: true, transposeB: false, accumulate: true);
            Gpu.BiasBackward(gradB.View, dY.View, rows, outputs);

            var x64 = x.to_type(ScalarType.Float64).requires_grad_(true);
            var w64 = w.to_type(ScalarType.Float64).requires_grad_(true);
            var b64 = b.to_type(ScalarType.Float64).requires_grad_(true);
            var g64 = upstream.to_type(ScalarType.Float64);
            Tensor Forward(Tensor xs, Tensor ws, Tensor bs) => weightOutIn ? nn.functional.linear(xs, ws, bs) : xs.matmul(ws) + bs;
            var expected = Forward(x64, w64, b64);
            (expected * g64).sum().backward();

            // float32 sums of at most 7 terms of magnitude < 10: 1e-5 absolute is ~20 ulp of the largest values.
            const double tolerance = 1e-5;
            AssertClose(expected.detach(), Download(y.View), tolerance, tolerance, "y");
            AssertClose(dx0.to_type(ScalarType.Float64) + x64.grad!, Download(gradX.View), tolerance, tolerance, "dx");
            AssertClose(dw0.to_type(ScalarType.Float64) + w64.grad!, Download(gradW.View), tolerance, tolerance, "dW");
            AssertClose(db0.to_type(ScalarType.Float64) + b64.grad!, Download(gradB.View), tolerance, tolerance, "db");

            // The loss is linear in each argument, so central differences are exact up to float64 rounding.
            using (no_grad())
            {
                double Loss(Tensor xs, Tensor ws, Tensor bs) => (Forward(xs, ws, bs) * g64).sum().item<double>();
                var fd = FiniteDifferences.Gradients(t => Loss(t[0], t[1], t[2]), 1e-3, x64.detach(), w64.detach(), b64.detach());
                AssertClose(fd[0] + dx0.to_type(ScalarType.Float64), Download(gradX.View), tolerance, tolerance, "dx vs finite differences");
                AssertClose(fd[1] + dw0.to_type(ScalarType.Float64), Download(gradW.View), tolerance, tolerance, "dW vs finite differences");
                AssertClose(fd[2] + db0.to_type(ScalarType.Float64), Download(gradB.View), tolerance, tolerance, "db vs finite differences");
            }
        }

        [Fact]
        public void Matmul_refuses_short_views_and_empty_sizes()
        {
            // m = 2, n = 3, k = 2: c and b need 6 elements, a 4, bias 3.
            using var six = Zeros(6);
            using var five = Zeros(5);
            using var three = Zeros(3);
            using var two = Zeros(2);
            var e = Assert.Throws<ArgumentException>(() => Gpu.Matmul(six.View, three.View, six.View, default, 2, 3, 2, false, false, false));
            Assert.Contains("Matmul: a has 3 elements, at least 4 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.Matmul(six.View, six.View, five.View, default, 2, 3, 2, false, true, false));
            Assert.Contains("Matmul: b has 5 elements, at least 6 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.Matmul(five.View, six.View, six.View, default, 2, 3, 2, false, false, false));
            Assert.Contains("Matmul: c has 5 elements, at least 6 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.Matmul(six.View, six.View, six.View, two.View, 2, 3, 2, false, false, false));
            Assert.Contains("Matmul: bias has 2 elements, at least 3 needed", e.Message);
            e = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.Matmul(six.View, six.View, six.View, default, 2, 3, 0, false, false, false));
            Assert.Contains("Matmul: k must be positive", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.Matmul(six.View, six.View, six.View, default, 65536, 65536, 1, false, false, false));
            Assert.Contains("Matmul: c would span 4294967296 elements", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.BiasBackward(two.View, six.View, 2, 3));
            Assert.Contains("BiasBackward: dBias has 2 elements, at least 3 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.BiasBackward(three.View, five.View, 2, 3));
            Assert.Contains("BiasBackward: dOutput has 5 elements, at least 6 needed", e.Message);
        }

        private static double Gamma(int n)
        {
            double u = Math.Pow(2, -24);
            return n * u / (1 - n * u);
        }

        /// <summary>|actual - expected| &lt;= bound element by element; returns the largest error as a fraction of its bound.</summary>
        private static double AssertWithinBound(Tensor expected, float[] actual, Tensor bound, string what)
        {
            var e = expected.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
            var limit = bound.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
            Assert.True(e.Length == actual.Length, $"{what}: {actual.Length} elements, expected {e.Length}");
            double worst = 0;
            for (int i = 0; i < e.Length; i++)
            {
                double error = Math.Abs(actual[i] - e[i]);
                Assert.True(error <= limit[i], $"{what}[{i}] = {actual[i]}, expected {e[i]} (error {error:g3}, bound {limit[i]:g3})");
                worst = Math.Max(worst, limit[i] > 0 ? error / limit[i] : 0);
            }
            return worst;
        }
    }
}
