using System;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// Sinusoidal positions against the float64 definition ("Attention Is All You Need", channel 2i = sin(p 10000^(-2i/C)),
    /// 2i + 1 = cos), added in place over a batch, with a position offset and past 10,000 positions (the table grows).
    /// Tolerance 1e-6 of 1 + max|reference|: one float32 addition of a term rounded once from double.
    /// </summary>
    public sealed class SinusoidalKernelTests(ITestOutputHelper output)
    {
        [Theory]
        [InlineData(2, 5, 8, 0)]
        [InlineData(1, 3, 6, 10_000)]
        public void Sinusoidal_positions_match_the_definition(int batch, int time, int channels, int offset)
        {
            var x = Randn(1, batch, time, channels);
            using var y = Upload(x);
            Gpu.SinusoidalPositionsForward(y.View, batch, time, channels, offset);

            var positions = arange(offset, offset + time, dtype: float64).unsqueeze(1);             // [T, 1]
            var rates = pow(tensor(10000.0, float64), -arange(0, channels / 2, dtype: float64) * 2 / channels); // [C/2]
            var angles = positions * rates;
            var table = stack(new[] { angles.sin(), angles.cos() }, -1).reshape(time, channels);      // interleaved
            AssertNear(F64(x) + table, Download(y.View), 1e-6, "x + positions", output);
        }

        [Fact]
        public void Sinusoidal_positions_reject_an_odd_width_by_name()
        {
            using var y = Zeros(15);
            var e = Assert.Throws<ArgumentException>(() => Gpu.SinusoidalPositionsForward(y.View, 1, 3, 5, 0));
            Assert.Contains("SinusoidalPositionsForward: 5 channels are not sin/cos pairs", e.Message, StringComparison.Ordinal);
        }
    }
}
