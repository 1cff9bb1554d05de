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
    /// <summary>GPT-2's layout: learned positions, LayerNorm, GELU (tanh), fused qkv (column views), Conv1D weights, a tied head.</summary>
    public sealed class CrossBackendGptTests : CrossBackendTests
    {
        protected override int Vocab => TinyIlgpuGpt.IlgpuModel.Vocab;

        protected override CausalLanguageModel CreateReference() => TinyIlgpuGpt.CreateTorchSharp();

        protected override IlgpuCausalLanguageModel CreateModel() => TinyIlgpuGpt.CreateIlgpu(Device);
    }

    /// <summary>Mistral's (Llama's with a sliding window): rotary positions, RMSNorm, SwiGLU, GQA, a window, no biases, an untied nn.Linear head.</summary>
    public sealed class CrossBackendMistralTests : CrossBackendTests
    {
        protected override int Vocab => TinyIlgpuMistral.IlgpuModel.Vocab;

        protected override CausalLanguageModel CreateReference() => TinyIlgpuMistral.CreateTorchSharp();

        protected override IlgpuCausalLanguageModel CreateModel() => TinyIlgpuMistral.CreateIlgpu(Device);
    }

    /// <summary>
    /// The original Transformer's decoder: sinusoidal positions, post-norm (LayerNorm after each residual addition), ReLU,
    /// untied head; 5 training steps (a variant of GPT's schedule, not a family: the emulator's time goes to the families).
    /// </summary>
    public sealed class CrossBackendSinusoidalTests : CrossBackendTests
    {
        protected override int Vocab => TinyIlgpuSinusoidal.IlgpuModel.Vocab;

        protected override int TrainingSteps => 5;

        protected override CausalLanguageModel CreateReference() => TinyIlgpuSinusoidal.CreateTorchSharp();

        protected override IlgpuCausalLanguageModel CreateModel() => TinyIlgpuSinusoidal.CreateIlgpu(Device);
    }

    /// <summary>
    /// Mixtral's: every layer a mixture of SwiGLU experts with top-2 routing; the loss includes the load-balancing and
    /// z losses over both layers' routing, so the router's gradient has both the task's and the routing loss's share.
    /// </summary>
    public sealed class CrossBackendMixtralTests : CrossBackendTests
    {
        protected override int Vocab => TinyIlgpuMixtral.IlgpuModel.Vocab;

        protected override CausalLanguageModel CreateReference() => TinyIlgpuMixtral.CreateTorchSharp();

        protected override IlgpuCausalLanguageModel CreateModel() => TinyIlgpuMixtral.CreateIlgpu(Device);
    }

    /// <summary>GPT-2-named experts (Conv1D weights read in place) with Switch's top-1 routing; 5 steps (a variant of the MoE family).</summary>
    public sealed class CrossBackendMoeGptTests : CrossBackendTests
    {
        protected override int Vocab => TinyIlgpuMoeGpt.IlgpuModel.Vocab;

        protected override int TrainingSteps => 5;

        protected override CausalLanguageModel CreateReference() => TinyIlgpuMoeGpt.CreateTorchSharp();

        protected override IlgpuCausalLanguageModel CreateModel() => TinyIlgpuMoeGpt.CreateIlgpu(Device);
    }

    /// <summary>
    /// Switch's: mixture-of-experts layers between dense ones (every second of four), so the stack's layers run two bodies
    /// and each keeps its own per-layer buffers; 5 steps.
    /// </summary>
    public sealed class CrossBackendSwitchTests : CrossBackendTests
    {
        protected override int Vocab => TinyIlgpuSwitch.IlgpuModel.Vocab;

        protected override int TrainingSteps => 5;

        protected override CausalLanguageModel CreateReference() => TinyIlgpuSwitch.CreateTorchSharp();

        protected override IlgpuCausalLanguageModel CreateModel() => TinyIlgpuSwitch.CreateIlgpu(Device);
    }

    /// <summary>
    /// The same declaration on both backends, with the same weights (moved through a safetensors file): logits, loss,
    /// every parameter gradient, and 20 AdamW steps (fewer for variants). The TorchSharp side is libtorch's autograd and optimizer, so this
    /// checks the ILGPU schedule, its hand-derived backward and the fused AdamW against an independent implementation.
    /// Tolerances: <see cref="CrossBackendChecks"/>.
    /// </summary>
    public abstract class CrossBackendTests : IDisposable
    {
        private const int Batch = 2, Time = 7;
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-ilgpu-").FullName;

        protected abstract int Vocab { get; }

        /// <summary>AdamW steps the loss curves are compared over.</summary>
        protected virtual int TrainingSteps => 20;

        protected abstract CausalLanguageModel CreateReference();

        protected abstract IlgpuCausalLanguageModel CreateModel();

        public void Dispose() => Directory.Delete(folder, recursive: true);

        private (CausalLanguageModel Reference, IlgpuCausalLanguageModel Model) Pair()
        {
            torch.manual_seed(7);
            var reference = CreateReference();
            return (reference, Transfer(reference, CreateModel(), folder));
        }

        [Fact]
        public void Logits_loss_and_every_gradient_equal_libtorchs()
        {
            var (reference, model) = Pair();
            using var _ = model;
            AssertSameLogitsLossAndGradients(reference, model, Vocab, Batch, Time);
        }

        [Fact]
        public void Adamw_steps_follow_libtorchs_loss_curve()
        {
            var (reference, model) = Pair();
            using var _ = model;
            TrainSideBySide(reference, model, TrainingSteps, Vocab, Batch, Time);
        }
    }
}
