using System.Linq;
using ModelDsl.TorchSharp;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// T5's relative position bias: the host's buckets against the TorchSharp backend's (Hugging Face's formula on
    /// tensors), the forward against the TorchSharp backend's bias, the table's gradient against float64 autograd and
    /// finite differences (tolerance 1e-6 of 1 + max|reference|: sums of a few dozen float32 values); and the scaled
    /// accumulation of T5's tied-head rescaling.
    /// </summary>
    public sealed class RelativeBiasKernelTests(ITestOutputHelper output)
    {
        /// <summary>(bidirectional, buckets, max distance): T5's defaults both ways, and the tests' small model's.</summary>
        public static TheoryData<bool, int, int> Configurations => new() { { true, 32, 128 }, { false, 32, 128 }, { true, 8, 12 }, { false, 8, 12 } };

        [Theory, MemberData(nameof(Configurations))]
        public void Host_buckets_equal_the_torchsharp_backends_for_every_distance_to_600(bool bidirectional, int buckets, int maxDistance)
        {
            var relative = arange(-600, 601, dtype: ScalarType.Int64);
            var expected = TransformerModel.RelativePositionBuckets(relative, bidirectional, buckets, maxDistance).data<long>().ToArray();
            var actual = Enumerable.Range(-600, 1201).Select(r => (long)Kernels.RelativePositionBucket(r, bidirectional, buckets, maxDistance)).ToArray();
            Assert.Equal(expected, actual);
        }

        /// <summary>(heads, time, bidirectional, buckets, max distance): one position; the small model's sizes; long enough for the log buckets.</summary>
        public static TheoryData<int, int, bool, int, int> Cases => new() { { 1, 1, true, 8, 12 }, { 2, 7, true, 8, 12 }, { 2, 7, false, 8, 12 }, { 3, 40, true, 32, 128 }, { 3, 40, false, 16, 20 } };

        [Theory, MemberData(nameof(Cases))]
        public void Bias_and_table_gradient_match_the_torchsharp_backend_and_autograd(int heads, int time, bool bidirectional, int buckets, int maxDistance)
        {
            var table = Randn(1, buckets, heads);
            var dy = Randn(2, heads, time, time);
            using var deviceTable = Upload(table);
            using var bias = Zeros((long)heads * time * time);
            using var dBias = Upload(dy);
            using var dTable = Filled((long)buckets * heads, 0.5f);
            Gpu.RelativePositionBiasForward(bias.View, deviceTable.View, heads, time, time, bidirectional, buckets, maxDistance);
            Gpu.RelativePositionBiasBackward(dTable.View, dBias.View, heads, time, time, bidirectional, buckets, maxDistance);

            var leaf = Leaf(table);
            var x = zeros(1, time, 1);
            var reference = TransformerModel.RelativePositionBias(x, leaf, bidirectional, buckets, maxDistance, new ForwardState());
            reference.backward(new[] { F64(dy) });
            Assert.Equal(Floats(reference), Download(bias.View)); // a gather copies
            AssertNear(GradOf(leaf) + 0.5, Download(dTable.View), 1e-6, $"dTable + 0.5 ({heads} heads, {time} positions)", output);
        }

        [Fact]
        public void Table_gradient_matches_finite_differences()
        {
            const int heads = 2, time = 9, buckets = 8, maxDistance = 12;
            var table = Randn(3, buckets, heads);
            var dy = Randn(4, heads, time, time);
            using var dBias = Upload(dy);
            using var dTable = Zeros(buckets * heads);
            Gpu.RelativePositionBiasBackward(dTable.View, dBias.View, heads, time, time, bidirectional: true, buckets, maxDistance);
            var x = zeros(1, time, 1);
            AssertNear(FiniteDifferences(v => Dot(TransformerModel.RelativePositionBias(x, v, true, buckets, maxDistance, new ForwardState()), F64(dy)), table),
                Download(dTable.View), 1e-6, "dTable vs finite differences", output);
        }

        [Fact]
        public void Accumulate_scaled_adds_the_scaled_gradient()
        {
            var a = Randn(5, 37);
            var b = Randn(6, 37);
            using var destination = Upload(a);
            using var source = Upload(b);
            Gpu.AccumulateScaled(destination.View, source.View, 0.25f);
            AssertNear(a + 0.25 * b, Download(destination.View), 1e-7, "a + 0.25 b", output);
        }
    }
}
