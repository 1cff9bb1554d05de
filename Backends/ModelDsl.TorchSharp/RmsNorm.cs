using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// Root-mean-square norm with a gain and no bias (T5's LayerNorm, Llama's RMSNorm): x / sqrt(mean(x^2) + eps) x
    /// weight, the statistics in float32 whatever the input's type, as both reference implementations compute them.
    /// </summary>
    public sealed class RmsNorm : nn.Module<Tensor, Tensor>
    {
        public readonly global::TorchSharp.Modules.Parameter weight;
        private readonly double epsilon;

        public RmsNorm(long width, double epsilon) : base(nameof(RmsNorm))
        {
            weight = new global::TorchSharp.Modules.Parameter(torch.ones(width));
            this.epsilon = epsilon;
            RegisterComponents();
        }

        public double Epsilon => epsilon;

        public override Tensor forward(Tensor x)
        {
            var type = x.dtype;
            var wide = type is ScalarType.Float16 or ScalarType.BFloat16 ? x.to(ScalarType.Float32) : x;
            var normed = wide * (wide.square().mean(new long[] { -1 }, keepdim: true) + epsilon).rsqrt();
            return weight * normed.to(type);
        }
    }
}
