using ModelDsl.Ilgpu;
using TorchSharp;
using Xunit;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    public sealed class ElementwiseKernelTests
    {
        [Fact]
        public void Add_and_accumulate_match_libtorch()
        {
            var a = Randn(1, 37);
            var b = Randn(2, 37);
            using var da = Upload(a);
            using var db = Upload(b);
            using var output = Zeros(37);
            Gpu.Add(output.View, da.View, db.View);
            AssertClose(a + b, Download(output.View), 0, 0, "a + b");
            Gpu.Accumulate(output.View, da.View);
            AssertClose(a + b + a, Download(output.View), 1e-6, 1e-6, "a + b + a");
        }

        [Fact]
        public void Select_token_and_its_backward_match_libtorchs_indexing_and_autograd()
        {
            // 3 sequences of 5 tokens, 7 channels (not a power of two); the last token too, the pooler's edge.
            foreach (int index in new[] { 0, 4 })
            {
                var input = Randn(3, 3, 5, 7).requires_grad_(true);
                var dOutput = Randn(4, 3, 7);
                var expected = input.select(1, index);
                expected.backward(new[] { dOutput });

                using var x = Upload(input.detach());
                using var selected = Zeros(3 * 7);
                Gpu.SelectTokenForward(selected.View, x.View, 3, 5, 7, index);
                AssertClose(expected.detach(), Download(selected.View), 0, 0, $"token {index}");

                // The backward adds into the row and leaves the others: start from a non-zero gradient.
                var previous = Randn(5, 3, 5, 7);
                using var dInput = Upload(previous);
                using var dy = Upload(dOutput);
                Gpu.SelectTokenBackward(dInput.View, dy.View, 3, 5, 7, index);
                AssertClose(previous + input.grad!, Download(dInput.View), 0, 0, $"d input, token {index}");
            }
            using var row = Zeros(7);
            using var sequence = Zeros(35);
            var e = Assert.Throws<System.ArgumentOutOfRangeException>(() => Gpu.SelectTokenForward(row.View, sequence.View, 1, 5, 7, 5));
            Assert.Contains("token 5 is outside a sequence of 5", e.Message);
        }

        [Fact]
        public void Launchers_refuse_views_of_other_lengths()
        {
            using var a = Zeros(4);
            using var b = Zeros(5);
            var e = Assert.Throws<System.ArgumentException>(() => Gpu.Add(a.View, a.View, b.View));
            Assert.Contains("Add: b has 5 elements, the output 4", e.Message);
        }
    }
}
