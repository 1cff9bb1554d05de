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
    /// LoRA on both backends (TinyIlgpuLoraGpt: adapters on GPT-2's fused c_attn and on the MLP, beside Conv1D weights):
    /// logits, loss and every gradient with lora_B moved off its zero start, and adapter-only training with the base
    /// frozen (libtorch's model.Lora.Freeze() against the ILGPU store's FreezeBase), whose base weights must not move.
    /// Tolerances: <see cref="CrossBackendChecks"/>.
    /// </summary>
    public sealed class CrossBackendLoraTests : IDisposable
    {
        private const int Batch = 2, Time = 7, Vocab = TinyIlgpuLoraGpt.IlgpuModel.Vocab;
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-ilgpu-lora-").FullName;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        private (CausalLanguageModel Reference, IlgpuCausalLanguageModel Model) Pair()
        {
            torch.manual_seed(11);
            var reference = TinyIlgpuLoraGpt.CreateTorchSharp();
            // B starts at zero (the adapted model equals its base): move it, so A's gradient and the update's use are checked.
            using (torch.no_grad())
                foreach (var (name, p) in reference.named_parameters().Where(p => p.name.Contains(".lora_B.", StringComparison.Ordinal)))
                    p.copy_(torch.randn_like(p) * 0.2);
            return (reference, Transfer(reference, TinyIlgpuLoraGpt.CreateIlgpu(Device), folder));
        }

        [Fact]
        public void Adapted_logits_loss_and_every_gradient_equal_libtorchs()
        {
            var (reference, model) = Pair();
            using var _ = model;
            AssertSameLogitsLossAndGradients(reference, model, Vocab, Batch, Time);
        }

        [Fact]
        public void With_the_base_frozen_only_the_adapters_train_and_follow_libtorchs_loss_curve()
        {
            var (reference, model) = Pair();
            using var _ = model;
            reference.Lora.Freeze();
            model.Parameters.FreezeBase();
            var baseBefore = model.Parameters.Slots.Where(s => !reference.Lora.IsAdapterTensor(s.Name)).ToDictionary(s => s.Name, s => model.Parameters.Get(s.Name));
            Assert.Equal(model.Parameters.AdapterCount, reference.Lora.ParameterCount);

            TrainSideBySide(reference, model, steps: 10, Vocab, Batch, Time);
            foreach (var (name, before) in baseBefore)
                Assert.True(before.AsSpan().SequenceEqual(model.Parameters.Get(name)), $"the frozen base weight {name} moved");
        }
    }
}
