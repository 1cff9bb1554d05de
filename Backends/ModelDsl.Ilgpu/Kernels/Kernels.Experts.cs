using System;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // Mixture of experts: the top-k router and the experts' feed-forward, forward and backward (what the generated MoE
    // layers launch), and the load-balancing and z losses over all layers' routing.
    //
    // Router, one thread per token over its E logits (E is small: 4 to 64): p = softmax(logits); the K largest in turn
    // (ties to the lower index), weights = their probabilities, renormalised to sum to one when asked (Mixtral). Its
    // backward, with g_k the gradient of the k-th weight: without renormalisation dp[s_k] = g_k; with it,
    // w_k = p[s_k] / S, S = sum_j p[s_j], so dp[s_k] = (g_k - sum_j g_j w_j) / S. Then softmax's Jacobian:
    // dlogits_e += p_e (dp_e - sum_f p_f dp_f), and sum_f p_f dp_f = sum_k p[s_k] dp[s_k] needs no array.
    //
    // Experts, for token t and slot k with expert e = selected[t, k] and weight w = weights[t, k]:
    //   u = up_e x_t [Inner] (and the gate's g = gate_e x_t when gated), a = f(u) (or f(g) u), y_t += w down_e a.
    // Direct loops, one thread per output element, each reading only the expert its slot chose: the pre-activations
    // [tokens, K, Inner] are kept for the backward. Backward: dw = dy_t . (down_e a); da = w down_e^T dy_t; du, dg by
    // the activation's derivative; dx_t += up_e^T du (+ gate_e^T dg); and the weight gradients, one thread per weight
    // element summing the slots routed to its expert in token order (deterministic, no atomics). The loops are not
    // tiled: a grouped GEMM over tokens sorted by expert (as the embedding backward sorts ids) is the fast version.
    // Weights are nn.Linear's [out, in] per expert (Mixtral's w1, w3, w2) or, with ExpertsShape.InOut, GPT-2 Conv1D's
    // [in, out] (c_fc, c_proj): UpIndex and DownIndex read either in place, and the weight-gradient kernels walk the
    // gradients in their own storage order, so no layout costs a copy.
    public sealed partial class Kernels
    {
        /// <summary>weights, selected [tokens, topK] from logits [tokens, experts]: the top-k softmax probabilities (renormalised when asked).</summary>
        public void RouterForward(ArrayView<float> weights, ArrayView<int> selected, ArrayView<float> logits, int tokens, int experts, int topK, bool renormalize)
        {
            const string kernel = nameof(RouterForward);
            CheckRouter(kernel, weights, selected, logits, tokens, experts, topK);
            Load(nameof(RouterForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int>(RouterForwardKernel))
                (tokens, weights, selected, logits, experts, topK, renormalize ? 1 : 0);
        }

        /// <summary>dLogits [tokens, experts] += the gradient through the top-k weights (dWeights [tokens, topK]); the selection itself has none.</summary>
        public void RouterBackward(ArrayView<float> dLogits, ArrayView<float> dWeights, ArrayView<float> logits, ArrayView<int> selected,
            int tokens, int experts, int topK, bool renormalize)
        {
            const string kernel = nameof(RouterBackward);
            CheckRouter(kernel, dWeights, selected, logits, tokens, experts, topK);
            Check.Length(kernel, nameof(dLogits), dLogits, (long)tokens * experts);
            Load(nameof(RouterBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, int>(RouterBackwardKernel))
                (tokens, dLogits, dWeights, logits, selected, experts, topK, renormalize ? 1 : 0);
        }

        /// <summary>
        /// output [tokens, hidden] = sum over the token's slots of weight x expert(x): up [experts, inner, hidden], gate (the same,
        /// or <c>default</c>), down [experts, hidden, inner]; keeps the pre-activations in up/gate PreActivation [tokens, topK, inner].
        /// </summary>
        public void ExpertsForward(ArrayView<float> output, ArrayView<float> upPreActivation, ArrayView<float> gatePreActivation,
            ArrayView<float> x, ArrayView<float> weights, ArrayView<int> selected, ArrayView<float> up, ArrayView<float> gate, ArrayView<float> down,
            ExpertsShape shape)
        {
            const string kernel = nameof(ExpertsForward);
            var layout = CheckExperts(kernel, shape, x, weights, selected, up, gate, down, upPreActivation, gatePreActivation);
            Check.Length(kernel, nameof(output), output, (long)shape.Tokens * shape.Hidden);
            Load(nameof(ExpertsPreActivationKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>,
                    ArrayView<float>, ArrayView<float>, ExpertsLayout>(ExpertsPreActivationKernel))
                (shape.Tokens * shape.TopK * shape.Inner, upPreActivation, gatePreActivation, x, selected, up, gate, layout);
            Load(nameof(ExpertsCombineKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>,
                    ArrayView<float>, ArrayView<float>, ExpertsLayout>(ExpertsCombineKernel))
                (shape.Tokens * shape.Hidden, output, upPreActivation, gatePreActivation, selected, weights, down, layout);
        }

        /// <summary>
        /// The experts' backward, accumulating: dX [tokens, hidden], dWeights [tokens, topK], dUp, dGate (or <c>default</c>)
        /// and dDown (the weights' shapes) from dOutput [tokens, hidden] and the forward's inputs and pre-activations.
        /// </summary>
        public void ExpertsBackward(ArrayView<float> dX, ArrayView<float> dWeights, ArrayView<float> dUp, ArrayView<float> dGate, ArrayView<float> dDown,
            ArrayView<float> dOutput, ArrayView<float> upPreActivation, ArrayView<float> gatePreActivation,
            ArrayView<float> x, ArrayView<float> weights, ArrayView<int> selected, ArrayView<float> up, ArrayView<float> gate, ArrayView<float> down,
            ExpertsShape shape)
        {
            const string kernel = nameof(ExpertsBackward);
            var layout = CheckExperts(kernel, shape, x, weights, selected, up, gate, down, upPreActivation, gatePreActivation);
            Check.Length(kernel, nameof(dOutput), dOutput, (long)shape.Tokens * shape.Hidden);
            Check.Length(kernel, nameof(dX), dX, (long)shape.Tokens * shape.Hidden);
            Check.Length(kernel, nameof(dWeights), dWeights, (long)shape.Tokens * shape.TopK);
            Check.Length(kernel, nameof(dUp), dUp, (long)shape.Experts * shape.Inner * shape.Hidden);
            if (shape.Gated) Check.Length(kernel, nameof(dGate), dGate, (long)shape.Experts * shape.Inner * shape.Hidden);
            Check.Length(kernel, nameof(dDown), dDown, (long)shape.Experts * shape.Hidden * shape.Inner);
            int slots = shape.Tokens * shape.TopK;
            // The pre-activations' gradients, for the input and the up/gate weights: working memory, [slots, inner] each.
            var dPre = Scratch<float>(nameof(ExpertsBackward), 2L * slots * shape.Inner);
            var dUpPre = dPre.SubView(0, (long)slots * shape.Inner);
            var dGatePre = dPre.SubView((long)slots * shape.Inner, (long)slots * shape.Inner);

            Load(nameof(ExpertsWeightGradientKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<int>, ArrayView<float>, ExpertsLayout>(ExpertsWeightGradientKernel))
                (slots, dWeights, dOutput, upPreActivation, gatePreActivation, selected, down, layout);
            Load(nameof(ExpertsPreActivationGradientKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ExpertsLayout>(ExpertsPreActivationGradientKernel))
                (slots * shape.Inner, dUpPre, dGatePre, dOutput, upPreActivation, gatePreActivation, weights, selected, down, layout);
            Load(nameof(ExpertsInputGradientKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>,
                    ArrayView<float>, ArrayView<float>, ExpertsLayout>(ExpertsInputGradientKernel))
                (shape.Tokens * shape.Hidden, dX, dUpPre, dGatePre, selected, up, gate, layout);
            Load(nameof(ExpertsUpGradientKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<int>, ExpertsLayout>(ExpertsUpGradientKernel))
                (shape.Experts * shape.Inner * shape.Hidden, dUp, dGate, dUpPre, dGatePre, x, selected, layout);
            Load(nameof(ExpertsDownGradientKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<int>, ExpertsLayout>(ExpertsDownGradientKernel))
                (shape.Experts * shape.Hidden * shape.Inner, dDown, dOutput, upPreActivation, gatePreActivation, weights, selected, layout);
        }

        /// <summary>
        /// Adds one MoE layer's routing to the model-wide statistics of Hugging Face's load-balancing loss, which takes
        /// its means over the tokens of all layers at once: statistics [topK * experts + experts + 1] holds, per slot k
        /// and expert e, the tokens whose k-th choice is e, then the sums over tokens of p_e, then the sum of
        /// logsumexp(logits)^2 (the z-loss). One thread per expert (and one for the z term) walks the tokens in order.
        /// </summary>
        public void RoutingStatistics(ArrayView<float> statistics, ArrayView<float> logits, ArrayView<int> selected, int tokens, int experts, int topK)
        {
            const string kernel = nameof(RoutingStatistics);
            CheckRouter(kernel, logits, selected, logits, tokens, experts, topK);
            Check.Length(kernel, nameof(statistics), statistics, RoutingStatisticsLength(experts, topK));
            Load(nameof(RoutingStatisticsKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, int>(RoutingStatisticsKernel))
                (experts + 1, statistics, logits, selected, tokens, experts, topK);
        }

        /// <summary>Floats of the routing statistics: per-slot counts, probability sums and the z-loss sum.</summary>
        public static int RoutingStatisticsLength(int experts, int topK) => topK * experts + experts + 1;

        /// <summary>
        /// loss += weight x experts x sum_k sum_e f[k, e] P[e] + zWeight x mean(logsumexp^2), with f the counts and P the
        /// probability sums over <paramref name="routedTokens"/> (tokens x MoE layers): Hugging Face's load_balancing_loss_func
        /// over all layers' logits concatenated, and ST-MoE's router z-loss. One thread.
        /// </summary>
        public void RoutingLoss(ArrayView<float> loss, ArrayView<float> statistics, int routedTokens, int experts, int topK, float weight, float zWeight)
        {
            const string kernel = nameof(RoutingLoss);
            Check.Positive(kernel, nameof(routedTokens), routedTokens);
            Check.Length(kernel, nameof(statistics), statistics, RoutingStatisticsLength(experts, topK));
            Check.Length(kernel, nameof(loss), loss, 1);
            Load(nameof(RoutingLossKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int, float, float>(RoutingLossKernel))
                (1, loss, statistics, routedTokens, experts, topK, weight, zWeight);
        }

        /// <summary>
        /// dLogits [tokens, experts] of one layer += the routing loss's gradient (scaled by <paramref name="scale"/>, the
        /// loss's own gradient): P reaches every token's probabilities, p_e (g_e - sum_f p_f g_f) with
        /// g_e = weight x experts x (sum_k f[k, e]) / routedTokens, and the z-loss gives zWeight x 2 lse p_e / routedTokens.
        /// The counts f have no gradient. The statistics must be complete (every layer's forward done).
        /// </summary>
        public void RoutingLossBackward(ArrayView<float> dLogits, ArrayView<float> logits, ArrayView<float> statistics, int tokens, int routedTokens,
            int experts, int topK, float weight, float zWeight, float scale)
        {
            const string kernel = nameof(RoutingLossBackward);
            Check.Positive(kernel, nameof(tokens), tokens);
            Check.Positive(kernel, nameof(routedTokens), routedTokens);
            Check.Length(kernel, nameof(statistics), statistics, RoutingStatisticsLength(experts, topK));
            Check.Length(kernel, nameof(logits), logits, (long)tokens * experts);
            Check.Length(kernel, nameof(dLogits), dLogits, (long)tokens * experts);
            Load(nameof(RoutingLossBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    int, int, int, float, float, float>(RoutingLossBackwardKernel))
                (tokens, dLogits, logits, statistics, routedTokens, experts, topK, weight, zWeight, scale);
        }

        [Kernel]
        internal static void RoutingStatisticsKernel(Index1D i, ArrayView<float> statistics, ArrayView<float> logits, ArrayView<int> selected, int tokens, int experts, int topK)
        {
            int e = i;
            float z = 0f, probability = 0f;
            for (int t = 0; t < tokens; t++)
            {
                long row = (long)t * experts;
                float max = float.NegativeInfinity;
                for (int f = 0; f < experts; f++) max = XMath.Max(max, logits[row + f]);
                float sum = 0f;
                for (int f = 0; f < experts; f++) sum += XMath.Exp(logits[row + f] - max);
                if (e == experts)
                {
                    float lse = max + XMath.Log(sum);
                    z += lse * lse;
                }
                else
                {
                    probability += XMath.Exp(logits[row + e] - max) / sum;
                    for (int k = 0; k < topK; k++)
                        if (selected[(long)t * topK + k] == e) statistics[k * experts + e] += 1f;
                }
            }
            if (e == experts) statistics[topK * experts + experts] += z;
            else statistics[topK * experts + e] += probability;
        }

        [Kernel]
        internal static void RoutingLossKernel(Index1D i, ArrayView<float> loss, ArrayView<float> statistics, int routedTokens, int experts, int topK, float weight, float zWeight)
        {
            float n = routedTokens, balance = 0f;
            for (int k = 0; k < topK; k++)
                for (int e = 0; e < experts; e++)
                    balance += statistics[k * experts + e] / n * (statistics[topK * experts + e] / n);
            loss[0] += weight * experts * balance + zWeight * statistics[topK * experts + experts] / n;
        }

        [Kernel]
        internal static void RoutingLossBackwardKernel(Index1D t, ArrayView<float> dLogits, ArrayView<float> logits, ArrayView<float> statistics,
            int routedTokens, int experts, int topK, float weight, float zWeight, float scale)
        {
            long row = (long)(int)t * experts;
            float n = routedTokens;
            float max = float.NegativeInfinity;
            for (int e = 0; e < experts; e++) max = XMath.Max(max, logits[row + e]);
            float sum = 0f;
            for (int e = 0; e < experts; e++) sum += XMath.Exp(logits[row + e] - max);
            float lse = max + XMath.Log(sum);
            // g_e = dLoss/dp_e = weight x experts x F_e / n, F_e = sum_k f[k, e]; c = sum_f p_f g_f.
            float c = 0f;
            for (int e = 0; e < experts; e++)
            {
                float counted = 0f;
                for (int k = 0; k < topK; k++) counted += statistics[k * experts + e];
                c += XMath.Exp(logits[row + e] - max) / sum * (weight * experts * counted / n / n);
            }
            for (int e = 0; e < experts; e++)
            {
                float counted = 0f;
                for (int k = 0; k < topK; k++) counted += statistics[k * experts + e];
                float p = XMath.Exp(logits[row + e] - max) / sum;
                float g = weight * experts * counted / n / n;
                dLogits[row + e] += scale * (p * (g - c) + zWeight * 2f * lse * p / n);
            }
        }

        private static void CheckRouter(string kernel, ArrayView<float> weights, ArrayView<int> selected, ArrayView<float> logits, int tokens, int experts, int topK)
        {
            Check.Positive(kernel, nameof(tokens), tokens);
            Check.Positive(kernel, nameof(experts), experts);
            if (topK < 1 || topK > experts)
                throw new ArgumentOutOfRangeException(nameof(topK), topK, $"{kernel}: topK must be in [1, experts = {experts}].");
            Check.Length(kernel, nameof(logits), logits, Check.Indexable(kernel, nameof(logits), (long)tokens * experts));
            Check.Length(kernel, kernel == nameof(RouterForward) ? nameof(weights) : "dWeights", weights, (long)tokens * topK);
            Check.Length(kernel, nameof(selected), selected, (long)tokens * topK);
        }

        private static ExpertsLayout CheckExperts(string kernel, ExpertsShape shape, ArrayView<float> x, ArrayView<float> weights, ArrayView<int> selected,
            ArrayView<float> up, ArrayView<float> gate, ArrayView<float> down, ArrayView<float> upPre, ArrayView<float> gatePre)
        {
            Check.Positive(kernel, nameof(shape.Tokens), shape.Tokens);
            Check.Positive(kernel, nameof(shape.Hidden), shape.Hidden);
            Check.Positive(kernel, nameof(shape.Inner), shape.Inner);
            Check.Positive(kernel, nameof(shape.Experts), shape.Experts);
            if (shape.TopK < 1 || shape.TopK > shape.Experts)
                throw new ArgumentOutOfRangeException(nameof(shape), shape.TopK, $"{kernel}: TopK must be in [1, Experts = {shape.Experts}].");
            if (!Enum.IsDefined(shape.Function)) throw new ArgumentOutOfRangeException(nameof(shape), shape.Function, $"{kernel}: unknown activation.");
            long slots = (long)shape.Tokens * shape.TopK, matrix = Check.Indexable(kernel, "up", (long)shape.Experts * shape.Inner * shape.Hidden);
            Check.Length(kernel, nameof(x), x, (long)shape.Tokens * shape.Hidden);
            Check.Length(kernel, nameof(weights), weights, slots);
            Check.Length(kernel, nameof(selected), selected, slots);
            Check.Length(kernel, nameof(up), up, matrix);
            if (shape.Gated) Check.Length(kernel, nameof(gate), gate, matrix);
            Check.Length(kernel, nameof(down), down, matrix);
            Check.Length(kernel, "upPreActivation", upPre, Check.Indexable(kernel, "upPreActivation", slots * shape.Inner));
            if (shape.Gated) Check.Length(kernel, "gatePreActivation", gatePre, slots * shape.Inner);
            return new ExpertsLayout(shape.Tokens, shape.Hidden, shape.Inner, shape.Experts, shape.TopK, (int)shape.Function, shape.Gated ? 1 : 0, shape.InOut ? 1 : 0);
        }

        [Kernel]
        internal static void RouterForwardKernel(Index1D t, ArrayView<float> weights, ArrayView<int> selected, ArrayView<float> logits, int experts, int topK, int renormalize)
        {
            long row = (long)(int)t * experts;
            float max = float.NegativeInfinity;
            for (int e = 0; e < experts; e++) max = XMath.Max(max, logits[row + e]);
            float sum = 0f;
            for (int e = 0; e < experts; e++) sum += XMath.Exp(logits[row + e] - max);
            float chosen = 0f;
            for (int k = 0; k < topK; k++)
            {
                // The largest logit not taken yet (the largest probability), ties to the lower index.
                int best = -1;
                for (int e = 0; e < experts; e++)
                {
                    bool taken = false;
                    for (int j = 0; j < k; j++) taken |= selected[(long)(int)t * topK + j] == e;
                    if (!taken && (best < 0 || logits[row + e] > logits[row + best])) best = e;
                }
                float p = XMath.Exp(logits[row + best] - max) / sum;
                selected[(long)(int)t * topK + k] = best;
                weights[(long)(int)t * topK + k] = p;
                chosen += p;
            }
            if (renormalize != 0)
                for (int k = 0; k < topK; k++) weights[(long)(int)t * topK + k] /= chosen;
        }

        [Kernel]
        internal static void RouterBackwardKernel(Index1D t, ArrayView<float> dLogits, ArrayView<float> dWeights, ArrayView<float> logits, ArrayView<int> selected,
            int experts, int topK, int renormalize)
        {
            long row = (long)(int)t * experts, slot = (long)(int)t * topK;
            float max = float.NegativeInfinity;
            for (int e = 0; e < experts; e++) max = XMath.Max(max, logits[row + e]);
            float sum = 0f;
            for (int e = 0; e < experts; e++) sum += XMath.Exp(logits[row + e] - max);
            // S and sum_j g_j w_j of the renormalisation (w_j = p[s_j] / S).
            float chosen = 0f, weighted = 0f;
            for (int k = 0; k < topK; k++) chosen += XMath.Exp(logits[row + selected[slot + k]] - max) / sum;
            for (int k = 0; k < topK; k++) weighted += dWeights[slot + k] * XMath.Exp(logits[row + selected[slot + k]] - max) / sum / chosen;
            // c = sum_k p[s_k] dp[s_k]; dp[s_k] = g_k, or (g_k - weighted) / S.
            float c = 0f;
            for (int k = 0; k < topK; k++)
            {
                float g = renormalize != 0 ? (dWeights[slot + k] - weighted) / chosen : dWeights[slot + k];
                c += XMath.Exp(logits[row + selected[slot + k]] - max) / sum * g;
            }
            for (int e = 0; e < experts; e++)
            {
                float dp = 0f;
                for (int k = 0; k < topK; k++)
                    if (selected[slot + k] == e) dp += renormalize != 0 ? (dWeights[slot + k] - weighted) / chosen : dWeights[slot + k];
                float p = XMath.Exp(logits[row + e] - max) / sum;
                dLogits[row + e] += p * (dp - c);
            }
        }

        /// <summary>Where up_e[j, c] (and gate_e[j, c]) lies: [experts, inner, hidden], or [experts, hidden, inner] when stored [in, out].</summary>
        private static long UpIndex(int e, int j, int c, ExpertsLayout s)
            => s.InOut != 0 ? ((long)e * s.Hidden + c) * s.Inner + j : ((long)e * s.Inner + j) * s.Hidden + c;

        /// <summary>Where down_e[c, j] lies: [experts, hidden, inner], or [experts, inner, hidden] when stored [in, out].</summary>
        private static long DownIndex(int e, int c, int j, ExpertsLayout s)
            => s.InOut != 0 ? ((long)e * s.Inner + j) * s.Hidden + c : ((long)e * s.Hidden + c) * s.Inner + j;

        /// <summary>Thread (slot, j): the pre-activations u = up_e . x_t (and g = gate_e . x_t) of inner unit j.</summary>
        [Kernel]
        internal static void ExpertsPreActivationKernel(Index1D i, ArrayView<float> upPre, ArrayView<float> gatePre, ArrayView<float> x, ArrayView<int> selected,
            ArrayView<float> up, ArrayView<float> gate, ExpertsLayout s)
        {
            int slot = i / s.Inner, j = i % s.Inner, t = slot / s.TopK, e = selected[slot];
            long input = (long)t * s.Hidden;
            float u = 0f, g = 0f;
            for (int c = 0; c < s.Hidden; c++)
            {
                float xc = x[input + c];
                long weight = UpIndex(e, j, c, s);
                u += xc * up[weight];
                if (s.Gated != 0) g += xc * gate[weight];
            }
            upPre[i] = u;
            if (s.Gated != 0) gatePre[i] = g;
        }

        /// <summary>The activation of a slot's inner unit from its pre-activations: f(u), or f(g) u when gated.</summary>
        private static float ExpertActivation(ArrayView<float> upPre, ArrayView<float> gatePre, long index, ExpertsLayout s)
            => s.Gated != 0 ? ActivationValue(s.Function, gatePre[index]) * upPre[index] : ActivationValue(s.Function, upPre[index]);

        /// <summary>Thread (t, c): y[t, c] = sum over the token's slots of w down_e[c, :] . a.</summary>
        [Kernel]
        internal static void ExpertsCombineKernel(Index1D i, ArrayView<float> output, ArrayView<float> upPre, ArrayView<float> gatePre, ArrayView<int> selected,
            ArrayView<float> weights, ArrayView<float> down, ExpertsLayout s)
        {
            int t = i / s.Hidden, c = i % s.Hidden;
            float y = 0f;
            for (int k = 0; k < s.TopK; k++)
            {
                int slot = t * s.TopK + k, e = selected[slot];
                long activation = (long)(int)slot * s.Inner;
                float dot = 0f;
                for (int j = 0; j < s.Inner; j++) dot += down[DownIndex(e, c, j, s)] * ExpertActivation(upPre, gatePre, activation + j, s);
                y += weights[slot] * dot;
            }
            output[i] = y;
        }

        /// <summary>Thread (slot): dw += dy_t . (down_e a), the gradient of the slot's routing weight.</summary>
        [Kernel]
        internal static void ExpertsWeightGradientKernel(Index1D slot, ArrayView<float> dWeights, ArrayView<float> dOutput, ArrayView<float> upPre,
            ArrayView<float> gatePre, ArrayView<int> selected, ArrayView<float> down, ExpertsLayout s)
        {
            int t = slot / s.TopK, e = selected[slot];
            float sum = 0f;
            for (int c = 0; c < s.Hidden; c++)
            {
                long activation = (long)(int)slot * s.Inner;
                float dot = 0f;
                for (int j = 0; j < s.Inner; j++) dot += down[DownIndex(e, c, j, s)] * ExpertActivation(upPre, gatePre, activation + j, s);
                sum += dOutput[(long)t * s.Hidden + c] * dot;
            }
            dWeights[slot] += sum;
        }

        /// <summary>Thread (slot, j): da = w down_e[:, j] . dy_t, then du = da f'(u) (gated: dg = da u f'(g), du = da f(g)).</summary>
        [Kernel]
        internal static void ExpertsPreActivationGradientKernel(Index1D i, ArrayView<float> dUpPre, ArrayView<float> dGatePre, ArrayView<float> dOutput,
            ArrayView<float> upPre, ArrayView<float> gatePre, ArrayView<float> weights, ArrayView<int> selected, ArrayView<float> down, ExpertsLayout s)
        {
            int slot = i / s.Inner, j = i % s.Inner, t = slot / s.TopK, e = selected[slot];
            float da = 0f;
            for (int c = 0; c < s.Hidden; c++) da += down[DownIndex(e, c, j, s)] * dOutput[(long)t * s.Hidden + c];
            da *= weights[slot];
            if (s.Gated != 0)
            {
                float g = gatePre[i], u = upPre[i];
                dGatePre[i] = da * u * ActivationDerivative(s.Function, g);
                dUpPre[i] = da * ActivationValue(s.Function, g);
            }
            else dUpPre[i] = da * ActivationDerivative(s.Function, upPre[i]);
        }

        /// <summary>Thread (t, c): dx[t, c] += sum over the token's slots of up_e[:, c] . du (+ gate_e[:, c] . dg).</summary>
        [Kernel]
        internal static void ExpertsInputGradientKernel(Index1D i, ArrayView<float> dX, ArrayView<float> dUpPre, ArrayView<float> dGatePre, ArrayView<int> selected,
            ArrayView<float> up, ArrayView<float> gate, ExpertsLayout s)
        {
            int t = i / s.Hidden, c = i % s.Hidden;
            float sum = 0f;
            for (int k = 0; k < s.TopK; k++)
            {
                int slot = t * s.TopK + k, e = selected[slot];
                for (int j = 0; j < s.Inner; j++)
                {
                    long weight = UpIndex(e, j, c, s), pre = (long)(int)slot * s.Inner + j;
                    sum += up[weight] * dUpPre[pre];
                    if (s.Gated != 0) sum += gate[weight] * dGatePre[pre];
                }
            }
            dX[i] += sum;
        }

        /// <summary>Thread i, the i-th element of dUp in storage order, (e, j, c): += the sum over the slots routed to e, in token order, of du[slot, j] x[t, c] (and dGate with dg).</summary>
        [Kernel]
        internal static void ExpertsUpGradientKernel(Index1D i, ArrayView<float> dUp, ArrayView<float> dGate, ArrayView<float> dUpPre, ArrayView<float> dGatePre,
            ArrayView<float> x, ArrayView<int> selected, ExpertsLayout s)
        {
            int e = i / s.Hidden / s.Inner;
            int c = s.InOut != 0 ? i / s.Inner % s.Hidden : i % s.Hidden;
            int j = s.InOut != 0 ? i % s.Inner : i / s.Hidden % s.Inner;
            float u = 0f, g = 0f;
            for (int slot = 0; slot < s.Tokens * s.TopK; slot++)
            {
                if (selected[slot] != e) continue;
                float xc = x[(long)(slot / s.TopK) * s.Hidden + c];
                u += dUpPre[(long)(int)slot * s.Inner + j] * xc;
                if (s.Gated != 0) g += dGatePre[(long)(int)slot * s.Inner + j] * xc;
            }
            dUp[i] += u;
            if (s.Gated != 0) dGate[i] += g;
        }

        /// <summary>Thread i, the i-th element of dDown in storage order, (e, c, j): += the sum over the slots routed to e, in token order, of w dy[t, c] a[slot, j].</summary>
        [Kernel]
        internal static void ExpertsDownGradientKernel(Index1D i, ArrayView<float> dDown, ArrayView<float> dOutput, ArrayView<float> upPre, ArrayView<float> gatePre,
            ArrayView<float> weights, ArrayView<int> selected, ExpertsLayout s)
        {
            int e = i / s.Inner / s.Hidden;
            int j = s.InOut != 0 ? i / s.Hidden % s.Inner : i % s.Inner;
            int c = s.InOut != 0 ? i % s.Hidden : i / s.Inner % s.Hidden;
            float sum = 0f;
            for (int slot = 0; slot < s.Tokens * s.TopK; slot++)
            {
                if (selected[slot] != e) continue;
                sum += weights[slot] * dOutput[(long)(slot / s.TopK) * s.Hidden + c] * ExpertActivation(upPre, gatePre, (long)(int)slot * s.Inner + j, s);
            }
            dDown[i] += sum;
        }
    }

    /// <summary>
    /// The sizes of an experts call: tokens, width, inner width, experts, slots per token, the activation, gated or not,
    /// and the weights' layout: nn.Linear's [out, in] per expert (up and gate [experts, Inner, Hidden], down
    /// [experts, Hidden, Inner]), or with <paramref name="InOut"/> GPT-2 Conv1D's [in, out] (the transposes).
    /// </summary>
    public readonly record struct ExpertsShape(int Tokens, int Hidden, int Inner, int Experts, int TopK, KernelActivation Function, bool Gated, bool InOut = false);

    /// <summary><see cref="ExpertsShape"/> as the kernels read it (blittable: the activation and the flags as ints).</summary>
    internal readonly record struct ExpertsLayout(int Tokens, int Hidden, int Inner, int Experts, int TopK, int Function, int Gated, int InOut);
}
