using System;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// Dropout's masks cannot equal libtorch's (a different generator), so these tests pin down what must hold instead:
    /// the kept fraction within 5 standard deviations of 1 - rate, no correlation between neighbours, exact inverted
    /// scaling, the backward pass using the forward mask, reproducibility from (seed, index) alone, and the generator
    /// itself against SplitMix64's published outputs.
    /// </summary>
    public sealed class DropoutKernelTests(ITestOutputHelper output)
    {
        private const int Length = 20000;

        [Theory]
        [InlineData(0.1f)]
        [InlineData(0.5f)]
        public void Keeps_one_minus_rate_scales_and_backpropagates_through_the_same_mask(float rate)
        {
            var x = Floats(Randn(1, Length));
            var dy = Floats(Randn(2, Length));
            var (y, mask) = Forward(x, rate, seed: 42);
            using var dOutput = Upload(dy);
            using var deviceMask = UploadMask(mask);
            using var dInput = Filled(Length, 0.5f);
            Gpu.DropoutBackward(dInput.View, dOutput.View, deviceMask.View, rate);
            var dx = Download(dInput.View);

            int kept = mask.Count(m => m == 1);
            double expected = Length * (1 - rate), deviation = Math.Sqrt(Length * rate * (1 - rate));
            output.WriteLine($"rate {rate}: kept {kept} of {Length}, expected {expected:F0} +- {deviation:F0}");
            Assert.InRange(kept, expected - 5 * deviation, expected + 5 * deviation);
            Assert.All(mask, m => Assert.True(m is 0 or 1));
            // neighbours agree as often as independent draws would: p^2 + (1 - p)^2
            int agreeing = Enumerable.Range(1, Length - 1).Count(i => mask[i] == mask[i - 1]);
            double agreement = rate * rate + (1 - rate) * (1 - rate), pairs = Length - 1;
            Assert.InRange(agreeing, pairs * agreement - 5 * Math.Sqrt(pairs * agreement * (1 - agreement)), pairs * agreement + 5 * Math.Sqrt(pairs * agreement * (1 - agreement)));

            float scale = (float)(1.0 / (1 - rate));
            for (int i = 0; i < Length; i++)
            {
                Assert.Equal(mask[i] == 1 ? x[i] * scale : 0f, y[i]);
                Assert.Equal(mask[i] == 1 ? 0.5f + dy[i] * scale : 0.5f, dx[i]);
            }
        }

        [Fact]
        public void The_mask_is_a_function_of_seed_and_index_only()
        {
            var x = Floats(Randn(3, Length));
            var (_, first) = Forward(x, 0.3f, seed: 7);
            var (_, again) = Forward(x, 0.3f, seed: 7);
            var (_, other) = Forward(x, 0.3f, seed: 8);
            Assert.Equal(first, again);
            int differing = first.Zip(other).Count(p => p.First != p.Second);
            Assert.InRange(differing, Length * 2 * 0.3 * 0.7 * 0.9, Length * 2 * 0.3 * 0.7 * 1.1); // independent masks differ at 2p(1-p)
            // a shorter tensor gets the first elements of the same mask: the draw does not depend on the launch size
            var (_, prefix) = Forward(x.Take(333).ToArray(), 0.3f, seed: 7);
            Assert.Equal(first.Take(333), prefix);
            uint threshold = Kernels.DropThreshold(0.3f);
            Assert.Equal(first, Enumerable.Range(0, Length).Select(i => (byte)((uint)(Kernels.DropoutHash(7, i) >> 40) >= threshold ? 1 : 0)));
        }

        [Fact]
        public void The_generator_is_SplitMix64()
        {
            // The first outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c): counters 1 and 2.
            Assert.Equal(0xE220A8397B1DCDAFUL, Kernels.DropoutHash(0, 0));
            Assert.Equal(0x6E789E6AA1B965F4UL, Kernels.DropoutHash(0, 1));
        }

        [Fact]
        public void Rate_zero_keeps_everything_and_rate_one_drops_everything()
        {
            var x = Floats(Randn(4, 100));
            var (kept, all) = Forward(x, 0f, seed: 1);
            Assert.Equal(x, kept);
            Assert.All(all, m => Assert.Equal(1, m));
            var (dropped, none) = Forward(x, 1f, seed: 1);
            Assert.All(dropped, v => Assert.Equal(0f, v));
            Assert.All(none, m => Assert.Equal(0, m));
        }

        [Fact]
        public void Launchers_name_the_wrong_argument()
        {
            using var four = Zeros(4);
            using var mask = TestDevice.Accelerator.Allocate1D<byte>(3);
            var e = Assert.Throws<ArgumentException>(() => Gpu.DropoutForward(four.View, mask.View, four.View, 0.1f, 1));
            Assert.Contains("DropoutForward: mask has 3 elements, at least 4 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.DropoutBackward(four.View, four.View, mask.View, 0.1f));
            Assert.Contains("DropoutBackward: mask has 3 elements, at least 4 needed", e.Message);
            using var wholeMask = TestDevice.Accelerator.Allocate1D<byte>(4);
            var range = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.DropoutForward(four.View, wholeMask.View, four.View, 1.5f, 1));
            Assert.Contains("DropoutForward: rate must be in [0, 1]", range.Message);
        }

        private static (float[] Output, byte[] Mask) Forward(float[] x, float rate, ulong seed)
        {
            using var input = Upload(x);
            using var y = Zeros(x.Length);
            using var mask = TestDevice.Accelerator.Allocate1D<byte>(x.Length);
            Gpu.DropoutForward(y.View, mask.View, input.View, rate, seed);
            var maskValues = new byte[x.Length];
            TestDevice.Accelerator.Synchronize();
            mask.View.CopyToCPU(maskValues);
            return (Download(y.View), maskValues);
        }

        private static MemoryBuffer1D<byte, Stride1D.Dense> UploadMask(byte[] mask) => TestDevice.Accelerator.Allocate1D(mask);
    }
}
