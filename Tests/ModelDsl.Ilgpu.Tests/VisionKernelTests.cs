using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// The patch embedding against libtorch's conv2d (kernel = stride = patch), flattened and transposed as ViT does, with
    /// its weight and bias gradients against autograd in float64 and finite differences; the class token against cat and
    /// its autograd. Tolerance 1e-5 of the reference scale: each output is a float32 dot product of C*P*P terms.
    /// </summary>
    public sealed class VisionKernelTests(ITestOutputHelper output)
    {
        private const double Tolerance = 1e-5;

        /// <summary>(batch, channels, image, patch, hidden): one patch per image; 3 x 3 patches of 3 channels (hidden not a tile multiple).</summary>
        public static TheoryData<int, int, int, int, int> Cases => new() { { 1, 1, 4, 4, 5 }, { 2, 3, 6, 2, 7 }, { 3, 2, 8, 4, 16 } };

        private static Tensor Reference(Tensor pixels, Tensor weight, Tensor bias, int patch)
            => nn.functional.conv2d(pixels, weight, bias, strides: new long[] { patch, patch }).flatten(2).transpose(1, 2);

        [Theory, MemberData(nameof(Cases))]
        public void Patch_embedding_matches_conv2d_and_its_autograd(int batch, int channels, int image, int patch, int hidden)
        {
            var pixels = Randn(1, batch, channels, image, image);
            var weight = Randn(2, hidden, channels, patch, patch);
            var bias = Randn(3, hidden);
            int patches = image / patch * (image / patch);
            var dy = Randn(4, batch, patches, hidden);
            using var x = Upload(pixels);
            using var w = Upload(weight);
            using var b = Upload(bias);
            using var y = Zeros((long)batch * patches * hidden);
            using var dOutput = Upload(dy);
            using var dWeight = Filled(weight.numel(), 0.5f);
            using var dBias = Filled(hidden, 0.5f);
            Gpu.PatchEmbeddingForward(y.View, x.View, w.View, b.View, batch, channels, image, patch, hidden);
            Gpu.PatchEmbeddingBackward(dWeight.View, dBias.View, dOutput.View, x.View, batch, channels, image, patch, hidden);

            var wr = Leaf(weight);
            var br = Leaf(bias);
            var reference = Reference(F64(pixels), wr, br, patch);
            reference.backward(new[] { F64(dy) });
            AssertNear(reference, Download(y.View), Tolerance, "patch embedding", output);
            AssertNear(GradOf(wr) + 0.5, Download(dWeight.View), Tolerance, "dWeight + 0.5", output);
            AssertNear(GradOf(br) + 0.5, Download(dBias.View), Tolerance, "dBias + 0.5", output);
        }

        [Fact]
        public void Patch_embedding_weight_gradient_matches_finite_differences()
        {
            var pixels = Randn(5, 2, 2, 4, 4);
            var weight = Randn(6, 3, 2, 2, 2);
            var bias = Randn(7, 3);
            var dy = Randn(8, 2, 4, 3);
            using var x = Upload(pixels);
            using var dOutput = Upload(dy);
            using var dWeight = Zeros(weight.numel());
            using var dBias = Zeros(3);
            Gpu.PatchEmbeddingBackward(dWeight.View, dBias.View, dOutput.View, x.View, 2, 2, 4, 2, 3);
            AssertNear(FiniteDifferences(v => Dot(Reference(F64(pixels), v, F64(bias), 2), F64(dy)), weight), Download(dWeight.View), Tolerance, "dWeight vs finite differences", output);
        }

        [Fact]
        public void Class_token_matches_cat_and_its_autograd()
        {
            const int batch = 3, positions = 5, channels = 7;
            var input = Randn(9, batch, positions, channels);
            var token = Randn(10, 1, 1, channels);
            var dy = Randn(11, batch, positions + 1, channels);
            using var x = Upload(input);
            using var t = Upload(token);
            using var y = Zeros((long)batch * (positions + 1) * channels);
            using var dOutput = Upload(dy);
            using var dInput = Filled(input.numel(), 0.25f);
            using var dToken = Filled(channels, 0.25f);
            Gpu.ClassTokenForward(y.View, x.View, t.View, batch, positions, channels);
            Gpu.ClassTokenBackward(dInput.View, dToken.View, dOutput.View, batch, positions, channels);

            var xr = Leaf(input);
            var tr = Leaf(token);
            var reference = cat(new[] { tr.expand(batch, -1, -1), xr }, 1);
            reference.backward(new[] { F64(dy) });
            Assert.Equal(Floats(reference), Download(y.View)); // a copy
            AssertNear(GradOf(xr) + 0.25, Download(dInput.View), 1e-6, "dInput + 0.25", output);
            AssertNear(GradOf(tr) + 0.25, Download(dToken.View), 1e-6, "dToken + 0.25", output);
        }

        [Fact]
        public void Images_whose_side_is_not_a_multiple_of_the_patch_are_refused()
        {
            using var x = Zeros(2 * 6 * 6);
            using var w = Zeros(3 * 2 * 4 * 4);
            using var b = Zeros(3);
            using var y = Zeros(3);
            var e = Assert.Throws<System.ArgumentException>(() => Gpu.PatchEmbeddingForward(y.View, x.View, w.View, b.View, 1, 2, 6, 4, 3));
            Assert.Contains("the image side 6 must be a positive multiple of the patch side 4", e.Message);
        }
    }
}
