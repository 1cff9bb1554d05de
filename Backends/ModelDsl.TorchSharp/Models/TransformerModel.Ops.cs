using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ModelDsl.TorchSharp
{
    // The op functions generated code calls, one per op kind of the generator's IR that is not a module's forward.
    // Each is the reference definition of its op on this backend; tests check them against libtorch's own modules
    // and against explicit formulas.
    public abstract partial class TransformerModel
    {
        // ------------------------------------------------------------------ construction and initialisation

        /// <summary>A ModuleList of <paramref name="count"/> modules, the i-th made by <paramref name="create"/>(i).</summary>
        protected static global::TorchSharp.Modules.ModuleList<T> ModuleList<T>(int count, Func<int, T> create) where T : nn.Module
            => nn.ModuleList(Enumerable.Range(0, count).Select(create).ToArray());

        /// <summary>Fills a parameter with N(0, std) draws (TorchSharp's modules declare their tensors nullable; these exist).</summary>
        protected static void InitNormal(Tensor? parameter, double std) => nn.init.normal_(parameter ?? throw new ArgumentNullException(nameof(parameter)), 0.0, std);

        protected static void InitOnes(Tensor? parameter) => nn.init.ones_(parameter ?? throw new ArgumentNullException(nameof(parameter)));

        protected static void InitZeros(Tensor? parameter) => nn.init.zeros_(parameter ?? throw new ArgumentNullException(nameof(parameter)));

        // ------------------------------------------------------------------ element-wise

        public static Tensor Gelu(Tensor x) => F.gelu(x);

        /// <summary>GELU's tanh approximation (GPT-2's "gelu_new", T5 v1.1's gated-gelu).</summary>
        public static Tensor GeluTanh(Tensor x) => F.gelu(x, global::TorchSharp.Modules.GELU.Approximate.tanh);

        public static Tensor Relu(Tensor x) => F.relu(x);

        public static Tensor Silu(Tensor x) => F.silu(x);

        public static Tensor Tanh(Tensor x) => x.tanh();

        /// <summary>Inverted dropout while training; the identity in evaluation.</summary>
        protected Tensor Dropout(Tensor x, double rate) => training ? F.dropout(x, rate, true) : x;

        // ------------------------------------------------------------------ linear algebra

        /// <summary>x W^T (+ b) for a weight stored [out, in] that is not a module's own (a tied LM head).</summary>
        public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null) => F.linear(x, weight, bias);

        /// <summary>A LoRA update: scale x A^T B^T, with A [rank, in] and B [out, rank] (PEFT's lora_A and lora_B).</summary>
        public static Tensor LowRank(Tensor x, Tensor a, Tensor b, double scale) => F.linear(F.linear(x, a), b) * scale;

        /// <summary>The last dimension cut into two pieces of the given widths.</summary>
        public static (Tensor, Tensor) Split(Tensor x, long a, long b)
        {
            var parts = x.split(new[] { a, b }, -1);
            return (parts[0], parts[1]);
        }

        /// <summary>The last dimension cut into three pieces of the given widths (GPT-2's fused query/key/value).</summary>
        public static (Tensor, Tensor, Tensor) Split(Tensor x, long a, long b, long c)
        {
            var parts = x.split(new[] { a, b, c }, -1);
            return (parts[0], parts[1], parts[2]);
        }

        // ------------------------------------------------------------------ positions

        /// <summary>Positions offset .. offset + T of the tokens in <paramref name="x"/> ([B, T, ...]), after the cached ones.</summary>
        public static Tensor Positions(Tensor x, ForwardState state)
            => torch.arange(state.Offset, state.Offset + x.shape[1], dtype: ScalarType.Int64, device: x.device);

        /// <summary>
        /// The fixed encodings of Vaswani et al. (2017) for positions offset .. offset + T: PE[p, 2i] = sin(p / 10000^(2i/d)),
        /// PE[p, 2i+1] = cos(p / 10000^(2i/d)), d the width of <paramref name="x"/> [B, T, d]. Returns [T, d].
        /// </summary>
        public static Tensor SinusoidalPositions(Tensor x, ForwardState state)
        {
            long width = x.shape[^1];
            var positions = Positions(x, state).to(ScalarType.Float64).unsqueeze(1);                          // [T, 1]
            var rates = torch.exp(torch.arange(0, width, 2, dtype: ScalarType.Float64, device: x.device) * (-Math.Log(10000.0) / width)); // [d/2]
            var angles = positions * rates;                                                                      // [T, d/2]
            return torch.stack(new[] { angles.sin(), angles.cos() }, -1).reshape(x.shape[1], width).to(x.dtype);
        }

        /// <summary>
        /// Rotary positions on queries [B, T, Heads*D] and keys [B, T, KvHeads*D] in Hugging Face's rotate-half convention:
        /// with inv_freq[i] = base^(-2i/D) (i &lt; D/2) and angle[p, j] = p inv_freq[j mod D/2], each head becomes
        /// x cos(angle) + rotate_half(x) sin(angle), rotate_half([x1, x2]) = [-x2, x1], positions offset .. offset + T.
        /// </summary>
        public static (Tensor Q, Tensor K) Rotary(Tensor q, Tensor k, int headDim, double @base, ForwardState state)
        {
            var positions = Positions(q, state).to(ScalarType.Float64);                                             // [T]
            var inverse = torch.exp(torch.arange(0, headDim, 2, dtype: ScalarType.Float64, device: q.device) * (-Math.Log(@base) / headDim)); // [D/2]
            var angles = positions.unsqueeze(1) * inverse.unsqueeze(0);                                             // [T, D/2]
            var full = torch.cat(new[] { angles, angles }, -1).unsqueeze(1);                                        // [T, 1, D]
            var cos = full.cos().to(q.dtype);
            var sin = full.sin().to(q.dtype);
            Tensor Apply(Tensor x)
            {
                var heads = x.view(x.shape[0], x.shape[1], -1, headDim);                                           // [B, T, H, D]
                var (x1, x2) = (heads.narrow(-1, 0, headDim / 2), heads.narrow(-1, headDim / 2, headDim / 2));
                var rotated = torch.cat(new[] { -x2, x1 }, -1);
                return (heads * cos + rotated * sin).view(x.shape);
            }
            return (Apply(q), Apply(k));
        }

        /// <summary>
        /// T5's bucketed relative position bias [Heads, T, K] for queries at offset .. offset + T over keys 0 .. K-1
        /// (K = offset + T), from the table [Buckets, Heads]; see <see cref="RelativePositionBuckets"/>.
        /// </summary>
        public static Tensor RelativePositionBias(Tensor x, Tensor table, bool bidirectional, int buckets, int maxDistance, ForwardState state)
        {
            long time = x.shape[1], keys = state.Offset + time;
            var context = torch.arange(state.Offset, keys, dtype: ScalarType.Int64, device: x.device).unsqueeze(1);
            var memory = torch.arange(0, keys, dtype: ScalarType.Int64, device: x.device).unsqueeze(0);
            var bucket = RelativePositionBuckets(memory - context, bidirectional, buckets, maxDistance);              // [T, K]
            return table.index_select(0, bucket.flatten()).view(time, keys, -1).permute(2, 0, 1);                 // [Heads, T, K]
        }

        /// <summary>
        /// T5's bucket of each relative position (key - query), exactly as Hugging Face's _relative_position_bucket:
        /// bidirectional attention gives half the buckets to keys after the query; in each half the first
        /// buckets/2 distances have a bucket each and larger ones share logarithmically spaced buckets up to
        /// <paramref name="maxDistance"/>, beyond which all share the last. Causal attention only looks back.
        /// </summary>
        public static Tensor RelativePositionBuckets(Tensor relative, bool bidirectional, int buckets, int maxDistance)
        {
            var result = torch.zeros_like(relative);
            if (bidirectional)
            {
                buckets /= 2;
                result = result + relative.gt(0).to(ScalarType.Int64) * buckets;
                relative = relative.abs();
            }
            else
            {
                relative = -torch.minimum(relative, torch.zeros_like(relative));
            }
            int exact = buckets / 2;
            var small = relative.lt(exact);
            var large = exact + (relative.to(ScalarType.Float32) / exact).log() / Math.Log((double)maxDistance / exact) * (buckets - exact);
            var largeBucket = torch.minimum(large.to(ScalarType.Int64), torch.full_like(relative, buckets - 1));
            return result + torch.where(small, relative, largeBucket);
        }

        // ------------------------------------------------------------------ attention

        /// <summary>
        /// Multi-head attention for queries [B, T, Heads*D] over keys and values [B, K, KvHeads*D]; returns [B, T, Heads*D].
        /// The cache appends this pass's keys (self-attention) or keeps the encoder's (cross-attention). A key is
        /// visible when the mask allows it (causal: key position at most the query's; window: at most Window - 1
        /// before it; padding: mask[b, key] true); the position bias [Heads, T, K] is added to the scores. Without a
        /// mask or bias it is libtorch's fused scaled_dot_product_attention; otherwise the same with an additive mask
        /// (masked scores get the dtype's lowest value, so a row with no visible key stays finite).
        /// </summary>
        public static Tensor Attention(Tensor q, Tensor k, Tensor v, AttentionOptions options, ForwardState state, int layer,
            Tensor? mask = null, Tensor? bias = null)
        {
            long batch = q.shape[0], time = q.shape[1];
            var qh = q.view(batch, time, options.Heads, options.HeadDim).transpose(1, 2);                        // [B, H, T, D]
            var kh = k.view(batch, k.shape[1], options.KvHeads, options.HeadDim).transpose(1, 2);                // [B, Hkv, K, D]
            var vh = v.view(batch, v.shape[1], options.KvHeads, options.HeadDim).transpose(1, 2);
            long offset = 0;
            if (state.Cache is { } cache && options.Cache == AttentionCache.Self)
            {
                offset = state.Offset;
                (kh, vh) = cache.Append(layer, kh, vh);
            }
            else if (state.Cache is { } crossCache && options.Cache == AttentionCache.Cross)
                (kh, vh) = crossCache.Cross(layer, kh, vh);
            if (options.Groups > 1)
            {
                kh = kh.repeat_interleave(options.Groups, 1);
                vh = vh.repeat_interleave(options.Groups, 1);
            }
            // SDPA divides by sqrt(D); T5 does not scale, so its queries are pre-multiplied to cancel that.
            if (!options.Scaled) qh = qh * Math.Sqrt(options.HeadDim);
            double dropout = state.Training ? options.Dropout : 0.0;
            long keys = kh.shape[2];

            Tensor y;
            bool plainCausal = options.Causal && options.Window is null && offset == 0 && time == keys;
            if (mask is null && bias is null && (plainCausal || !options.Causal && options.Window is null))
                y = F.scaled_dot_product_attention(qh, kh, vh, p: dropout, is_casual: plainCausal);
            else if (mask is null && bias is null && options.Causal && time == 1 && options.Window is null)
                y = F.scaled_dot_product_attention(qh, kh, vh, p: dropout);
            else
                y = F.scaled_dot_product_attention(qh, kh, vh, AttentionBias(options, time, keys, offset, mask, bias, q), dropout);
            return y.transpose(1, 2).reshape(batch, time, options.Heads * options.HeadDim);
        }

        /// <summary>The additive mask [B or 1, H or 1, T, K]: 0 where visible (plus the bias), the dtype's lowest value elsewhere.</summary>
        private static Tensor AttentionBias(AttentionOptions options, long time, long keys, long offset, Tensor? mask, Tensor? bias, Tensor like)
        {
            var device = like.device;
            var query = torch.arange(offset, offset + time, dtype: ScalarType.Int64, device: device).unsqueeze(1); // [T, 1]
            var key = torch.arange(0, keys, dtype: ScalarType.Int64, device: device).unsqueeze(0);                // [1, K]
            var visible = torch.ones(new[] { time, keys }, ScalarType.Bool, device: device);
            if (options.Causal) visible = visible.logical_and(key.le(query));
            if (options.Window is int window) visible = visible.logical_and(key.gt(query - window));
            var allowed = visible.unsqueeze(0).unsqueeze(0);                                                      // [1, 1, T, K]
            if (mask is not null) allowed = allowed.logical_and(mask.unsqueeze(1).unsqueeze(1));                // [B, 1, T, K]
            var additive = torch.zeros(allowed.shape, like.dtype, device: device)
                .masked_fill(allowed.logical_not(), LowestValue(like.dtype));
            return bias is null ? additive : additive + bias.unsqueeze(0).to(like.dtype);
        }

        private static double LowestValue(ScalarType type) => type switch
        {
            ScalarType.Float64 => double.MinValue,
            ScalarType.Float16 => -65504.0,
            ScalarType.BFloat16 => -3.3895313892515355e38,
            _ => float.MinValue,
        };

        // ------------------------------------------------------------------ mixture of experts

        /// <summary>
        /// A top-k router over tokens: logits = x W_gate^T [N, E] (N = B x T), p = softmax(logits) (in float32 or wider,
        /// see <see cref="Routing.Probabilities"/>), the k most probable
        /// experts and their probabilities, renormalised to sum to one when <paramref name="renormalize"/> (Mixtral;
        /// Switch's top-1 keeps the raw probability, which is what lets the router learn). Records the tokens per
        /// expert of <paramref name="layer"/> in the state.
        /// </summary>
        public static (Tensor Weights, Tensor Experts, Tensor Logits) Route(Tensor x, Tensor gate, int topK, bool renormalize, ForwardState state, int layer)
        {
            var logits = F.linear(x.reshape(-1, x.shape[^1]), gate);                                              // [N, E]
            var probabilities = Routing.Probabilities(logits);
            var (weights, experts) = probabilities.topk(topK, -1);
            if (renormalize) weights = weights / weights.sum(-1, keepdim: true);
            using (torch.no_grad())
                state.AddExpertLoad(layer, torch.bincount(experts.flatten(), minlength: gate.shape[0]));
            return (weights.to(x.dtype), experts, logits);
        }

        /// <summary>
        /// Dispatch and combine: y[n] = sum_k weights[n, k] expert_{experts[n, k]}(x[n]) for tokens x [B, T, H].
        /// Each expert runs once on exactly the tokens routed to it (gathered, then scattered back with index_add).
        /// </summary>
        public static Tensor CombineExperts(Tensor x, Tensor weights, Tensor experts, Func<int, Tensor, Tensor> expert)
        {
            var tokens = x.reshape(-1, x.shape[^1]);                                                              // [N, H]
            var output = torch.zeros_like(tokens);
            int count = (int)experts.max().item<long>() + 1;
            for (int e = 0; e < count; e++)
            {
                var hit = experts.eq(e);                                                                          // [N, K]
                var rows = hit.any(-1).nonzero().squeeze(-1);
                if (rows.numel() == 0) continue;
                var weight = (weights * hit.to(weights.dtype)).sum(-1).index_select(0, rows).unsqueeze(-1);       // [n, 1]
                output = output.index_add(0, rows, expert(e, tokens.index_select(0, rows)) * weight, 1);
            }
            return output.view(x.shape);
        }

        // ------------------------------------------------------------------ vision, pooling, loss

        /// <summary>Non-overlapping patches projected by a strided Conv2d: [B, C, I, I] → [B, Patches, Hidden] (row-major patches).</summary>
        public static Tensor PatchEmbedding(Tensor pixels, nn.Module<Tensor, Tensor> projection)
            => projection.call(pixels).flatten(2).transpose(1, 2);

        /// <summary>The learned class token [1, 1, Hidden] in front of every sequence: [B, P, Hidden] → [B, P+1, Hidden].</summary>
        public static Tensor ClassToken(Tensor x, Tensor token)
            => torch.cat(new[] { token.expand(x.shape[0], -1, -1), x }, 1);

        /// <summary>Mean softmax cross-entropy of logits [.., C] against int64 targets [..]; -100 is ignored.</summary>
        public static Tensor CrossEntropy(Tensor logits, Tensor targets)
            => F.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1), ignore_index: IgnoredTarget);
    }
}
