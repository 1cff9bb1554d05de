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
    /// Rotary positions against a float64 reference written from the definition (x cos + rotate_half(x) sin with
    /// angle p * base^(-2j/D)) and its autograd, on rows read with a stride wider than the heads (a column view of a
    /// fused projection) and with a position offset (decoding after a cache). Tolerance 1e-6 of the reference scale: each
    /// output is two float32 products and a sum, and the table is the float64 cosine rounded once.
    /// </summary>
    public sealed class RotaryKernelTests(ITestOutputHelper output)
    {
        private const double Tolerance = 1e-6;

        /// <summary>(batch, time, heads, headDim, extra stride columns, offset): one token; a cache offset; GQA-sized keys; head dim 2.</summary>
        public static TheoryData<int, int, int, int, int, int> Cases => new()
        {
            { 1, 1, 1, 4, 0, 0 },
            { 2, 5, 3, 8, 0, 0 },
            { 2, 3, 2, 6, 5, 7 },
            { 1, 4, 1, 2, 3, 0 },
        };

        [Theory, MemberData(nameof(Cases))]
        public void Rotary_matches_the_definition_and_its_autograd(int batch, int time, int heads, int headDim, int extra, int offset)
        {
            const double theta = 500;
            int width = heads * headDim, stride = width + extra, rows = batch * time;
            var x = Randn(1, rows, stride);
            var dy = Randn(2, rows, width);
            using var input = Upload(x);
            using var y = Zeros((long)rows * width);
            using var dOutput = Upload(dy);
            using var dInput = Filled((long)rows * stride, 0.5f);
            Gpu.RotaryForward(y.View, input.View, rows, time, heads, headDim, stride, theta, offset);
            Gpu.RotaryBackward(dInput.View, dOutput.View, rows, time, heads, headDim, stride, theta, offset);

            var leaf = Leaf(x);
            var reference = Reference(leaf.narrow(1, 0, width), batch, time, heads, headDim, theta, offset);
            reference.backward(new[] { F64(dy) });
            AssertNear(reference, Download(y.View), Tolerance, "rotated", output);
            // The extra columns of the strided rows keep their 0.5: the backward writes the heads' columns only.
            AssertNear(GradOf(leaf) + 0.5, Download(dInput.View), Tolerance, "dInput + 0.5", output);
        }

        [Fact]
        public void Rotary_rejects_an_odd_head_dimension_and_a_short_input_by_name()
        {
            using var input = Zeros(10);
            using var y = Zeros(10);
            var odd = Assert.Throws<ArgumentException>(() => Gpu.RotaryForward(y.View, input.View, 2, 2, 1, 5, 5, 10000, 0));
            Assert.Contains("headDim 5 must be even", odd.Message);
            var narrow = Assert.Throws<ArgumentException>(() => Gpu.RotaryForward(y.View, input.View, 2, 2, 1, 4, 7, 10000, 0));
            Assert.Contains("RotaryForward: input has 10 elements, at least 11 needed", narrow.Message, StringComparison.Ordinal);
        }

        /// <summary>Each head's pair (j, j + D/2) at position offset + t turned by (offset + t) base^(-2j/D), in float64.</summary>
        private static Tensor Reference(Tensor x, int batch, int time, int heads, int headDim, double theta, int offset)
        {
            int half = headDim / 2;
            var positions = arange(offset, offset + time, dtype: float64);
            var inverse = pow(tensor(theta, float64), -arange(0, half, dtype: float64) * 2 / headDim);
            var angles = positions.unsqueeze(1) * inverse.unsqueeze(0);                  // [T, D/2]
            var (cos, sin) = (angles.cos().view(1, time, 1, half), angles.sin().view(1, time, 1, half));
            var heads4 = x.view(batch, time, heads, headDim);
            var (x1, x2) = (heads4.narrow(-1, 0, half), heads4.narrow(-1, half, half));
            return cat(new[] { x1 * cos - x2 * sin, x2 * cos + x1 * sin }, -1).view(batch * time, heads * headDim);
        }
    }
}
