using System;
using System.IO;
using System.Linq;
using TorchSharp;
using Xunit;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// A model with dropout everywhere GPT-2 has it, attention probabilities included. The masks cannot equal libtorch's
    /// (another generator), so: evaluation (no dropout) equals libtorch's evaluation, a training step drops (its loss
    /// differs from the evaluation loss), and a training step is reproducible from the seed. The kernels' gradients with
    /// a mask are checked exactly in AttentionKernelTests and DropoutKernelTests.
    /// </summary>
    public sealed class DropoutModelTests : IDisposable
    {
        private const int Batch = 2, Time = 7;
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-ilgpu-").FullName;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        [Fact]
        public void Evaluation_equals_libtorchs_and_training_steps_drop_reproducibly()
        {
            var random = new Random(3);
            var ids = Enumerable.Range(0, Batch * Time).Select(_ => random.Next(TinyIlgpuGptDropout.IlgpuModel.Vocab)).ToArray();
            var targets = Enumerable.Range(0, Batch * Time).Select(_ => random.Next(TinyIlgpuGptDropout.IlgpuModel.Vocab)).ToArray();
            torch.manual_seed(7);
            using var reference = TinyIlgpuGptDropout.CreateTorchSharp();
            reference.eval();
            string path = Path.Combine(folder, "weights.safetensors");
            reference.SaveSafetensors(path);
            using var first = TinyIlgpuGptDropout.CreateIlgpu(Device, seed: 11);
            using var second = TinyIlgpuGptDropout.CreateIlgpu(Device, seed: 11);
            first.LoadSafetensors(path);
            second.LoadSafetensors(path);

            using (torch.no_grad())
                AssertClose(reference.Forward(torch.tensor(ids.Select(i => (long)i).ToArray(), new long[] { Batch, Time })).Logits,
                    first.Logits(ids, Batch, Time), 2e-5, 1e-4, "evaluation logits");
            float evaluation = first.Loss(ids, targets, Batch, Time);

            float training = first.ForwardBackward(ids, targets, Batch, Time);
            var gradients = first.Parameters.GetGradient("transformer.h.0.attn.c_attn.weight");
            Assert.NotEqual(evaluation, training);
            Assert.Equal(training, second.ForwardBackward(ids, targets, Batch, Time));
            Assert.Equal(gradients, second.Parameters.GetGradient("transformer.h.0.attn.c_attn.weight"));
            Assert.NotEqual(training, first.ForwardBackward(ids, targets, Batch, Time)); // the next step draws new masks
        }
    }
}
