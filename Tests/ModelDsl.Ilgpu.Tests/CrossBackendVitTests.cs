using System;
using System.IO;
using System.Linq;
using ModelDsl.TorchSharp;
using TorchSharp;
using Xunit;
using static ModelDsl.Ilgpu.Tests.CrossBackendChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// ViT's image classifier on both backends with the same weights: the patch embedding (Conv2d as a gathered matrix
    /// product), the class token, learned positions over Patches + 1 tokens, the pre-norm encoder, the final norm and the
    /// classifier on the class token. Logits, loss and every gradient, then 20 AdamW steps.
    /// </summary>
    public sealed class CrossBackendVitTests : IDisposable
    {
        private const int Batch = 3, Steps = 20;
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-ilgpu-").FullName;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        private static int PixelsPerImage => TinyIlgpuVit.IlgpuModel.Channels * TinyIlgpuVit.IlgpuModel.ImageSize * TinyIlgpuVit.IlgpuModel.ImageSize;

        private static (float[] Pixels, int[] Labels) Data(int seed)
        {
            var random = new Random(seed);
            var pixels = Enumerable.Range(0, Batch * PixelsPerImage).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var labels = Enumerable.Range(0, Batch).Select(_ => random.Next(TinyIlgpuVit.IlgpuModel.Classes)).ToArray();
            return (pixels, labels);
        }

        private static torch.Tensor Images(float[] pixels)
            => torch.tensor(pixels, new long[] { Batch, TinyIlgpuVit.IlgpuModel.Channels, TinyIlgpuVit.IlgpuModel.ImageSize, TinyIlgpuVit.IlgpuModel.ImageSize });

        private static torch.Tensor Labels(int[] labels) => torch.tensor(labels.Select(l => (long)l).ToArray());

        private (ImageClassificationModel Reference, IlgpuImageClassificationModel Model) Pair()
        {
            torch.manual_seed(7);
            var reference = TinyIlgpuVit.CreateTorchSharp();
            return (reference, Transfer(reference, TinyIlgpuVit.CreateIlgpu(Device), folder));
        }

        [Fact]
        public void Logits_loss_and_every_gradient_equal_libtorchs()
        {
            var (reference, model) = Pair();
            using var _ = model;
            var (pixels, labels) = Data(1);

            using (torch.no_grad())
                AssertClose(reference.Forward(Images(pixels)).Logits, model.Logits(pixels, Batch), 2e-5, 1e-4, "logits");

            float loss = model.ForwardBackward(pixels, labels, Batch);
            var expected = reference.Loss(Images(pixels), Labels(labels));
            expected.backward();
            Assert.Equal(expected.item<float>(), loss, 1e-5f);
            AssertGradients(reference, model);
        }

        [Fact]
        public void Adamw_steps_follow_libtorchs_loss_curve()
        {
            var (reference, model) = Pair();
            using var _ = model;
            var optimizer = AdamW(reference);
            for (int step = 1; step <= Steps; step++)
            {
                var (pixels, labels) = Data(100 + step);
                optimizer.zero_grad();
                var expected = reference.Loss(Images(pixels), Labels(labels));
                expected.backward();
                ReferenceStep(reference, optimizer);

                float loss = model.ForwardBackward(pixels, labels, Batch);
                Step(model, step);
                AssertSameLoss(expected.item<float>(), loss, step);
            }
            AssertWeights(reference, model, Steps);
        }

        [Fact]
        public void Images_of_the_wrong_size_or_with_non_finite_pixels_are_refused()
        {
            using var model = TinyIlgpuVit.CreateIlgpu(Device);
            var size = Assert.Throws<ArgumentException>(() => model.Logits(new float[PixelsPerImage - 1], 1));
            Assert.Contains($"Model 'TinyIlgpuVit': pixels has {PixelsPerImage - 1} elements; [Batch=1, Channels=2, ImageSize=8, ImageSize=8] needs {PixelsPerImage}", size.Message);
            var pixels = new float[PixelsPerImage];
            pixels[PixelsPerImage - 1] = float.NaN;
            var nan = Assert.Throws<ArgumentException>(() => model.Logits(pixels, 1));
            Assert.Contains("pixels[0, 1, 7, 7] = NaN is not a finite number", nan.Message);
        }
    }
}
