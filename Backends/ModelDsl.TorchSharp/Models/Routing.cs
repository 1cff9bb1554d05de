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
            var probabilities = logits.to(ScalarType.Float32).softmax(-1);
            var mask = nn.functional.one_hot(selected, experts).to(ScalarType.Float32); // [N, K, E]
            var tokensPerExpert = mask.mean(new long[] { 0 });                           // [K, E]
            var probabilityPerExpert = probabilities.mean(new long[] { 0 });             // [E]
            return (tokensPerExpert * probabilityPerExpert.unsqueeze(0)).sum() * experts;
        }

        /// <summary>The router z-loss of ST-MoE (Zoph et al. 2022, eq. 5): mean over tokens of logsumexp(logits)^2.</summary>
        public static Tensor ZLoss(Tensor logits)
            => logits.to(ScalarType.Float32).logsumexp(-1).square().mean();
    }
}
