using System;
using System.Globalization;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// Comparisons and references of the kernel tests: errors measured against the scale of the reference (the
    /// project's convention: |actual - expected| &lt;= tolerance * (1 + max|expected|)), central finite differences in
    /// float64, and bit-level equality for determinism.
    /// </summary>
    internal static class KernelChecks
    {
        /// <summary>
        /// max |actual - expected| &lt;= tolerance * (1 + max|expected|); reports the measured error (relative to that scale)
        /// to the test output, so the documented numbers come from the tests themselves.
        /// </summary>
        public static double AssertNear(torch.Tensor expected, float[] actual, double tolerance, string what, ITestOutputHelper? output = null)
        {
            var e = expected.to_type(torch.float64).contiguous().data<double>().ToArray();
            Assert.True(e.Length == actual.Length, $"{what}: {actual.Length} elements, expected {e.Length}");
            double scale = 1 + e.Select(Math.Abs).DefaultIfEmpty(0).Max();
            double worst = 0;
            int worstAt = 0;
            for (int i = 0; i < e.Length; i++)
            {
                double error = Math.Abs(actual[i] - e[i]);
                Assert.False(double.IsNaN(actual[i]), $"{what}[{i}] is NaN, expected {e[i]}");
                if (error > worst)
                {
                    worst = error;
                    worstAt = i;
                }
            }
            double relative = worst / scale;
            output?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what}: max error {worst:g3} = {relative:g3} x (1 + max|ref| = {scale:g4}); tolerance {tolerance:g2}"));
            Assert.True(relative <= tolerance,
                string.Create(CultureInfo.InvariantCulture, $"{what}[{worstAt}] = {actual[worstAt]}, expected {e[worstAt]}: error {worst:g3} = {relative:g3} x (1 + max|ref|), over {tolerance:g2}"));
            return relative;
        }

        /// <summary>d f / d x by central differences in float64: (f(x + h e_i) - f(x - h e_i)) / 2h for every element.</summary>
        public static torch.Tensor FiniteDifferences(Func<torch.Tensor, double> f, torch.Tensor x, double h = 1e-6)
        {
            var values = x.to_type(torch.float64).contiguous().data<double>().ToArray();
            var shape = x.shape;
            var gradient = new double[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                double original = values[i];
                values[i] = original + h;
                double up = Evaluate(f, values, shape);
                values[i] = original - h;
                double down = Evaluate(f, values, shape);
                values[i] = original;
                gradient[i] = (up - down) / (2 * h);
            }
            return torch.tensor(gradient, shape, torch.float64);
        }

        private static double Evaluate(Func<torch.Tensor, double> f, double[] values, long[] shape)
        {
            using var scope = torch.NewDisposeScope();
            return f(torch.tensor(values, shape, torch.float64));
        }

        /// <summary>sum(upstream * y): the scalar whose gradient a backward kernel computes for the upstream gradient.</summary>
        public static double Dot(torch.Tensor y, torch.Tensor upstream) => (y * upstream).sum().item<double>();

        public static torch.Tensor F64(torch.Tensor t) => t.to_type(torch.float64);

        /// <summary>A float64 leaf tensor that records its gradient.</summary>
        public static torch.Tensor Leaf(torch.Tensor t) => t.to_type(torch.float64).detach().requires_grad_(true);

        /// <summary>The gradient autograd left in a leaf.</summary>
        public static torch.Tensor GradOf(torch.Tensor leaf) => leaf.grad ?? throw new InvalidOperationException("autograd left no gradient in this leaf");

        public static void AssertBitIdentical(float[] first, float[] second, string what)
        {
            Assert.Equal(first.Length, second.Length);
            for (int i = 0; i < first.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(first[i]) == BitConverter.SingleToInt32Bits(second[i]),
                    $"{what}[{i}]: {first[i]} then {second[i]}: not deterministic");
        }

        /// <summary>A device buffer of <paramref name="length"/> copies of <paramref name="value"/> (a gradient buffer that is not zero).</summary>
        public static MemoryBuffer1D<float, Stride1D.Dense> Filled(long length, float value)
            => TestDevice.Upload(Enumerable.Repeat(value, checked((int)length)).ToArray());

        public static float[] Floats(torch.Tensor t) => t.to_type(torch.float32).contiguous().data<float>().ToArray();
    }
}
