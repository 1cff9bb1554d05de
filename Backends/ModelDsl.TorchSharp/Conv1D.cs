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

        /// <param name="inFeatures">Input width.</param>
        /// <param name="outFeatures">Output width.</param>
        /// <param name="bias">Whether there is a bias.</param>
        /// <param name="loraRank">The adapters' rank r; 0: no adapters.</param>
        /// <param name="loraAlpha">PEFT's lora_alpha: the update B A is scaled by alpha / r. Required with adapters.</param>
        public Conv1D(long inFeatures, long outFeatures, bool bias = true, int loraRank = 0, double loraAlpha = 0) : base(nameof(Conv1D))
        {
            if (loraRank < 0) throw new System.ArgumentOutOfRangeException(nameof(loraRank), loraRank, "The LoRA rank must be 0 (no adapters) or positive.");
            if (loraRank > 0 && !(loraAlpha > 0 && double.IsFinite(loraAlpha)))
                throw new System.ArgumentOutOfRangeException(nameof(loraAlpha), loraAlpha, "LoRA adapters need a positive, finite alpha.");
            weight = new global::TorchSharp.Modules.Parameter(torch.empty(inFeatures, outFeatures));
            if (bias) this.bias = new global::TorchSharp.Modules.Parameter(torch.zeros(outFeatures));
            using (torch.no_grad()) nn.init.normal_(weight, 0.0, 0.02);
            if (loraRank > 0)
            {
                lora_A = new Linear(inFeatures, loraRank, bias: false);
                lora_B = new Linear(loraRank, outFeatures, bias: false);
                LoraAlpha = loraAlpha;
            }
            RegisterComponents();
        }

        /// <summary>PEFT's lora_alpha (0 without adapters).</summary>
        public double LoraAlpha { get; }

        /// <summary>The factor of the adapters' update, alpha / r (0 without adapters).</summary>
        public double LoraScale => lora_A is null ? 0 : LoraAlpha / lora_A.weight.shape[0];

        public override Tensor forward(Tensor x)
        {
            var shape = x.shape;
            shape[^1] = weight.shape[1];
            using var flat = x.reshape(-1, weight.shape[0]);
            return (bias is null ? flat.matmul(weight) : torch.addmm(bias, flat, weight, 1, 1)).view(shape);
        }
    }
}
