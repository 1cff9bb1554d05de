using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// Hugging Face GPT-2's "Conv1D": a linear layer whose weight is stored [in, out] (transposed relative to
    /// nn.Linear), so checkpoints load without a transpose. y = bias + x @ weight, one fused addmm.
    /// </summary>
    public sealed class Conv1D : nn.Module<Tensor, Tensor>
    {
        public readonly global::TorchSharp.Modules.Parameter weight;
        public readonly global::TorchSharp.Modules.Parameter bias;

        public Conv1D(long inFeatures, long outFeatures, double initStd = 0.02) : base(nameof(Conv1D))
        {
            weight = new global::TorchSharp.Modules.Parameter(torch.empty(inFeatures, outFeatures));
            bias = new global::TorchSharp.Modules.Parameter(torch.zeros(outFeatures));
            using (torch.no_grad()) nn.init.normal_(weight, 0.0, initStd);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var shape = x.shape;
            shape[^1] = weight.shape[1];
            using var flat = x.reshape(-1, weight.shape[0]);
            return torch.addmm(bias, flat, weight, 1, 1).view(shape);
        }
    }
}
