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
    /// Token embeddings against index_select and its autograd, learned positions against a broadcast addition; the
    /// backward sums are also checked bit for bit against a sequential float32 sum in token (batch) order, which is the
    /// order the kernels promise. Tolerance 1e-6 of the reference scale for the autograd comparisons (sums of at most a
    /// few hundred float32 values).
    /// </summary>
    public sealed class EmbeddingKernelTests(ITestOutputHelper output)
    {
        private const double Tolerance = 1e-6;

        /// <summary>(tokens, channels, vocab, distinct ids used): 1 token; 300 tokens (2 sort tiles) over 5 ids; all tokens one id.</summary>
        public static TheoryData<int, int, int, int> Cases => new() { { 1, 7, 3, 3 }, { 300, 37, 11, 5 }, { 70, 5, 4, 1 }, { 19, 64, 50, 50 } };

        [Theory, MemberData(nameof(Cases))]
        public void Embedding_matches_index_select_and_its_autograd(int tokens, int channels, int vocab, int distinct)
        {
            var ids = Ids(tokens, distinct, vocab, seed: tokens);
            var table = Randn(1, vocab, channels);
            var dy = Randn(2, tokens, channels);
            using var deviceIds = Upload(ids);
            using var deviceTable = Upload(table);
            using var y = Zeros((long)tokens * channels);
            using var dOutput = Upload(dy);
            using var dTable = Filled((long)vocab * channels, 0.5f);
            Gpu.EmbeddingForward(y.View, deviceIds.View, deviceTable.View, tokens, channels);
            Gpu.EmbeddingBackward(dTable.View, dOutput.View, deviceIds.View, tokens, channels, vocab);

            var tr = Leaf(table);
            var reference = tr.index_select(0, tensor(ids.Select(i => (long)i).ToArray()));
            reference.backward(new[] { F64(dy) });
            Assert.Equal(Floats(reference), Download(y.View)); // a gather copies
            var dTableValues = Download(dTable.View);
            AssertNear(GradOf(tr) + 0.5, dTableValues, Tolerance, "dTable + 0.5", output);
            AssertBitIdentical(SequentialTokenSums(ids, Floats(dy), channels, vocab, 0.5f), dTableValues, "dTable vs sums in token order");
        }

        [Fact]
        public void Embedding_backward_matches_finite_differences()
        {
            var ids = new[] { 2, 0, 2, 1, 2 };
            var table = Randn(3, 4, 3);
            var dy = Randn(4, 5, 3);
            using var deviceIds = Upload(ids);
            using var dOutput = Upload(dy);
            using var dTable = Zeros(12);
            Gpu.EmbeddingBackward(dTable.View, dOutput.View, deviceIds.View, 5, 3, 4);
            var index = tensor(ids.Select(i => (long)i).ToArray());
            AssertNear(FiniteDifferences(v => Dot(v.index_select(0, index), F64(dy)), table), Download(dTable.View), Tolerance, "dTable vs finite differences", output);
        }

        [Fact]
        public void Positions_match_a_broadcast_addition_and_its_autograd()
        {
            const int batch = 3, time = 5, channels = 6, context = 9, offset = 2;
            var x = Randn(5, batch, time, channels);
            var table = Randn(6, context, channels);
            var dy = Randn(7, batch, time, channels);
            using var activations = Upload(x);
            using var deviceTable = Upload(table);
            using var dOutput = Upload(dy);
            using var dTable = Filled(context * channels, -0.25f);
            Gpu.PositionsForward(activations.View, deviceTable.View, batch, time, channels, offset);
            Gpu.PositionsBackward(dTable.View, dOutput.View, batch, time, channels, offset);

            var tr = Leaf(table);
            var reference = F64(x) + tr.narrow(0, offset, time);
            reference.backward(new[] { F64(dy) });
            AssertNear(reference, Download(activations.View), Tolerance, "x + positions", output);
            var dTableValues = Download(dTable.View);
            AssertNear(GradOf(tr) - 0.25, dTableValues, Tolerance, "dTable - 0.25", output);
            var expected = Enumerable.Repeat(-0.25f, context * channels).ToArray();
            var dyValues = Floats(dy);
            for (int t = 0; t < time; t++)
                for (int c = 0; c < channels; c++)
                {
                    float sum = 0f;
                    for (int b = 0; b < batch; b++) sum += dyValues[(b * time + t) * channels + c];
                    expected[(offset + t) * channels + c] += sum;
                }
            AssertBitIdentical(expected, dTableValues, "dTable vs sums in batch order");
            AssertNear(FiniteDifferences(v => Dot(F64(x) + v.narrow(0, offset, time), F64(dy)), table), dTableValues.Select(v => v + 0.25f).ToArray(),
                Tolerance, "dTable vs finite differences", output);
        }

        [Fact]
        public void Launchers_name_the_wrong_argument()
        {
            using var six = Zeros(6);
            using var ids = Upload(new[] { 0, 1 });
            var e = Assert.Throws<ArgumentException>(() => Gpu.EmbeddingForward(six.View, ids.View, six.View, 3, 2));
            Assert.Contains("EmbeddingForward: ids has 2 elements, at least 3 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.EmbeddingBackward(six.View, six.View, ids.View, 2, 3, 4));
            Assert.Contains("EmbeddingBackward: dTable has 6 elements, at least 12 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.PositionsForward(six.View, six.View, 1, 2, 3, 1));
            Assert.Contains("PositionsForward: table has 6 elements, at least 9 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.PositionsBackward(six.View, six.View, 2, 2, 3, 0));
            Assert.Contains("PositionsBackward: dOutput has 6 elements, at least 12 needed", e.Message);
            var range = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.PositionsForward(six.View, six.View, 1, 2, 3, -1));
            Assert.Contains("PositionsForward: offset must be >= 0", range.Message);
        }

        /// <summary>Ids drawn from the first <paramref name="distinct"/> of <paramref name="vocab"/>, the last id included when it fits.</summary>
        private static int[] Ids(int tokens, int distinct, int vocab, int seed)
        {
            var random = new Random(seed);
            var ids = Enumerable.Range(0, tokens).Select(_ => random.Next(distinct)).ToArray();
            if (distinct == vocab) ids[^1] = vocab - 1;
            return ids;
        }

        private static float[] SequentialTokenSums(int[] ids, float[] dOutput, int channels, int vocab, float initial)
        {
            var sums = new float[vocab * channels];
            for (int t = 0; t < ids.Length; t++)
                for (int c = 0; c < channels; c++)
                    sums[ids[t] * channels + c] += dOutput[t * channels + c];
            return sums.Select(s => initial + s).ToArray();
        }
    }
}
