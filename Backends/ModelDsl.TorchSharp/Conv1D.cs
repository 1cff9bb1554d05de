using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// Hugging Face GPT-2's "Conv1D": a linear layer whose weight is stored [in, out] (transposed relative to
    /// nn.Linear), so checkpoints load without a transpose. y = bias + x @ weight, one fused addmm. With a LoRA rank,
    /// it also holds PEFT's adapters lora_A [rank, in] and lora_B [out, rank]; the generated code applies them.
    /// </summary>
    public sealed class Conv1D : nn.Module<Tensor, Tensor>
    {
        public readonly global::TorchSharp.Modules.Parameter weight;
        public readonly global::TorchSharp.Modules.Parameter? bias;
        public readonly Linear? lora_A;
        public readonly Linear? lora_B;

        public Conv1D(long inFeatures, long outFeatures, bool bias = true, int loraRank = 0) : base(nameof(Conv1D))
        {
            weight = new global::TorchSharp.Modules.Parameter(torch.empty(inFeatures, outFeatures));
            if (bias) this.bias = new global::TorchSharp.Modules.Parameter(torch.zeros(outFeatures));
            using (torch.no_grad()) nn.init.normal_(weight, 0.0, 0.02);
            if (loraRank > 0)
            {
                lora_A = new Linear(inFeatures, loraRank, bias: false);
                lora_B = new Linear(loraRank, outFeatures, bias: false);
            }
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var shape = x.shape;
            shape[^1] = weight.shape[1];
            using var flat = x.reshape(-1, weight.shape[0]);
            return (bias is null ? flat.matmul(weight) : torch.addmm(bias, flat, weight, 1, 1)).view(shape);
        }
    }
}
