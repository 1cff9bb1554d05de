using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// A linear layer with nn.Linear's layout (weight [out, in], optional bias) as Hugging Face's BERT, T5, ViT and
    /// Llama store it. With a LoRA rank, it also holds PEFT's adapters lora_A [rank, in] and lora_B [out, rank];
    /// the generated code applies them (the base forward is the frozen path).
    /// </summary>
    public sealed class Linear : nn.Module<Tensor, Tensor>
    {
        public readonly global::TorchSharp.Modules.Parameter weight;
        public readonly global::TorchSharp.Modules.Parameter? bias;
        public readonly Linear? lora_A;
        public readonly Linear? lora_B;

        public Linear(long inFeatures, long outFeatures, bool bias = true, int loraRank = 0) : base(nameof(Linear))
        {
            weight = new global::TorchSharp.Modules.Parameter(torch.empty(outFeatures, inFeatures));
            if (bias) this.bias = new global::TorchSharp.Modules.Parameter(torch.zeros(outFeatures));
            using (torch.no_grad()) nn.init.normal_(weight, 0.0, 0.02);
            if (loraRank > 0)
            {
                lora_A = new Linear(inFeatures, loraRank, bias: false);
                lora_B = new Linear(loraRank, outFeatures, bias: false);
            }
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => nn.functional.linear(x, weight, bias);
    }
}
