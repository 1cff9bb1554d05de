using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>Attention masks for the cases libtorch's is_causal flag does not cover.</summary>
    public static class AttentionMasks
    {
        /// <summary>
        /// Boolean mask [queries, offset + queries] (true = may attend) for queries that continue
        /// <paramref name="offset"/> cached positions: query i sees keys 0 .. offset + i. Null when every key is
        /// visible (a single new query), so SDPA takes its unmasked path.
        /// </summary>
        public static Tensor? Causal(long queries, long offset, Device device)
        {
            if (queries == 1) return null;
            var keys = torch.arange(offset + queries, device: device).unsqueeze(0);          // [1, K]
            var limit = torch.arange(offset, offset + queries, device: device).unsqueeze(1); // [Q, 1]
            return keys.le(limit);
        }
    }
}
