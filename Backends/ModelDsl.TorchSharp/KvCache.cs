using System;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// Per-layer key/value cache for incremental decoding. Keys and values live in preallocated
    /// [batch, kvHeads, capacity, headDim] buffers so decoding one token writes in place instead of
    /// concatenating (no per-token allocation of the whole history).
    /// </summary>
    public sealed class KvCache : IDisposable
    {
        private readonly Tensor[] keys;
        private readonly Tensor[] values;

        public KvCache(int layers, long batch, int kvHeads, int capacity, int headDim, Device device, ScalarType dtype)
        {
            Capacity = capacity;
            keys = new Tensor[layers];
            values = new Tensor[layers];
            for (int i = 0; i < layers; i++)
            {
                keys[i] = torch.zeros(new[] { batch, kvHeads, capacity, headDim }, dtype, device);
                values[i] = torch.zeros(new[] { batch, kvHeads, capacity, headDim }, dtype, device);
            }
        }

        /// <summary>Most positions the cache can hold (the model's context).</summary>
        public int Capacity { get; }

        /// <summary>Positions already cached (the offset of the next token).</summary>
        public int Length { get; private set; }

        /// <summary>
        /// Writes this step's keys/values ([B, kvHeads, T, D]) for <paramref name="layer"/> after the cached ones and
        /// returns views over everything cached so far. Call <see cref="Advance"/> once per forward pass.
        /// </summary>
        public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
        {
            long t = k.shape[2];
            if (Length + t > Capacity)
                throw new InvalidOperationException(
                    $"KV cache overflow: {Length} cached + {t} new positions exceeds the context of {Capacity}.");
            using (torch.no_grad())
            {
                keys[layer].narrow(2, Length, t).copy_(k);
                values[layer].narrow(2, Length, t).copy_(v);
            }
            return (keys[layer].narrow(2, 0, Length + t), values[layer].narrow(2, 0, Length + t));
        }

        /// <summary>Marks <paramref name="positions"/> new positions as cached (after every layer appended them).</summary>
        public void Advance(int positions) => Length += positions;

        /// <summary>Forgets every cached position (the buffers are reused, not freed).</summary>
        public void Clear() => Length = 0;

        public void Dispose()
        {
            foreach (var t in keys) t.Dispose();
            foreach (var t in values) t.Dispose();
        }
    }
}
