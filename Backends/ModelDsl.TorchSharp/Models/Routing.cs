using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>Mixture-of-experts routing losses, as Hugging Face computes them for Mixtral and Switch Transformers.</summary>
    public static class Routing
    {
        /// <summary>
        /// Hugging Face's load_balancing_loss_func (Switch Transformers eq. 4, with Mixtral's top-k): over all routed
        /// tokens of all layers, p = softmax(logits) [N, E], f[k, e] = the fraction of tokens whose k-th choice is e,
        /// P[e] = mean_n p[n, e]; loss = E x sum_k sum_e f[k, e] P[e]. Perfectly balanced routing gives TopK (its
        /// minimum under uniform probabilities); collapse onto one expert gives up to E x TopK. Gradients reach the
        /// router through P (f is a count).
        /// </summary>
        /// <param name="logits">Router logits [N, E] (all layers concatenated).</param>
        /// <param name="selected">Chosen experts [N, TopK], int64.</param>
        /// <param name="experts">E.</param>
        public static Tensor LoadBalancingLoss(Tensor logits, Tensor selected, int experts)
        {
            var probabilities = Probabilities(logits);
            var mask = nn.functional.one_hot(selected, experts).to(probabilities.dtype); // [N, K, E]
            var tokensPerExpert = mask.mean(new long[] { 0 });                           // [K, E]
            var probabilityPerExpert = probabilities.mean(new long[] { 0 });             // [E]
            return (tokensPerExpert * probabilityPerExpert.unsqueeze(0)).sum() * experts;
        }

        /// <summary>The router z-loss of ST-MoE (Zoph et al. 2022, eq. 5): mean over tokens of logsumexp(logits)^2.</summary>
        public static Tensor ZLoss(Tensor logits)
            => AtLeastFloat32(logits).logsumexp(-1).square().mean();

        /// <summary>
        /// softmax(logits) over the experts in float32 or wider: half-precision logits are widened, as Hugging Face's
        /// softmax(..., dtype=torch.float) does, and float64 stays float64 (narrowing it would cost a float64 model
        /// seven digits of its routing weights).
        /// </summary>
        public static Tensor Probabilities(Tensor logits) => AtLeastFloat32(logits).softmax(-1);

        private static Tensor AtLeastFloat32(Tensor x) => x.dtype == ScalarType.Float64 ? x : x.to(ScalarType.Float32);
    }
}
