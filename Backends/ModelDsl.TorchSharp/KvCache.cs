using System;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// Per-layer key/value cache for incremental decoding. Self-attention keys and values live in preallocated
    /// [batch, kvHeads, capacity, headDim] buffers, so decoding one token writes in place instead of concatenating;
    /// cross-attention (encoder-decoders) keeps the encoder's keys and values once per layer. A cache belongs to one
    /// model and one batch size: using it with another is an error naming both.
    /// </summary>
    public sealed class KvCache : IDisposable
    {
        private readonly Tensor[] keys;
        private readonly Tensor[] values;
        private readonly (Tensor Keys, Tensor Values)?[] cross;

        /// <summary>Creates an empty cache; models create theirs with CreateCache.</summary>
        public KvCache(string model, int layers, long batch, int kvHeads, int capacity, int headDim, Device device, ScalarType dtype)
        {
            Model = model;
            Batch = batch;
            Capacity = capacity;
            keys = new Tensor[layers];
            values = new Tensor[layers];
            cross = new (Tensor, Tensor)?[layers];
            for (int i = 0; i < layers; i++)
            {
                keys[i] = torch.zeros(new[] { batch, kvHeads, capacity, headDim }, dtype, device);
                values[i] = torch.zeros(new[] { batch, kvHeads, capacity, headDim }, dtype, device);
            }
        }

        /// <summary>The model the cache was made for.</summary>
        public string Model { get; }

        /// <summary>Sequences per batch.</summary>
        public long Batch { get; }

        /// <summary>Most positions the cache can hold (the model's context).</summary>
        public int Capacity { get; }

        /// <summary>Positions already cached (the offset of the next token).</summary>
        public int Length { get; private set; }

        /// <summary>Throws unless this cache fits <paramref name="model"/> and a batch of <paramref name="batch"/>.</summary>
        public void CheckFits(string model, long batch)
        {
            if (model != Model)
                throw new ArgumentException($"Model '{model}': the KV cache was created for model '{Model}'; create one with this model's CreateCache.", "cache");
            if (batch != Batch)
                throw new ArgumentException($"Model '{model}': the KV cache holds {Batch} sequence(s) but the token ids have {batch} (dimension 0, batch).", "cache");
        }

        /// <summary>
        /// Writes this step's keys/values ([B, kvHeads, T, D]) for <paramref name="layer"/> after the cached ones and
        /// returns views over everything cached so far. Call <see cref="Advance"/> once per forward pass.
        /// </summary>
        public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
        {
            long t = k.shape[2];
            if (Length + t > Capacity)
                throw new InvalidOperationException(
                    $"Model '{Model}': KV cache overflow: {Length} cached + {t} new positions exceeds the context of {Capacity}.");
            using (torch.no_grad())
            {
                keys[layer].narrow(2, Length, t).copy_(k);
                values[layer].narrow(2, Length, t).copy_(v);
            }
            return (keys[layer].narrow(2, 0, Length + t), values[layer].narrow(2, 0, Length + t));
        }

        /// <summary>The encoder's keys and values for <paramref name="layer"/>: these on the first call, the stored ones after.</summary>
        public (Tensor Keys, Tensor Values) Cross(int layer, Tensor k, Tensor v)
        {
            if (cross[layer] is { } stored) return stored;
            // Kept beyond the step's dispose scope, until the cache is cleared or disposed.
            var kept = (k.detach().clone().DetachFromDisposeScope(), v.detach().clone().DetachFromDisposeScope());
            cross[layer] = kept;
            return kept;
        }

        /// <summary>Marks <paramref name="positions"/> new positions as cached (after every layer appended them).</summary>
        public void Advance(int positions) => Length += positions;

        /// <summary>Forgets every cached position and the encoder's keys (the buffers are reused, not freed).</summary>
        public void Clear()
        {
            Length = 0;
            for (int i = 0; i < cross.Length; i++)
            {
                if (cross[i] is { } c) { c.Keys.Dispose(); c.Values.Dispose(); }
                cross[i] = null;
            }
        }

        /// <summary>Keeps only the sequences at <paramref name="rows"/> (beam search reorders its beams every step).</summary>
        public void Reorder(Tensor rows)
        {
            using (torch.no_grad())
            {
                for (int i = 0; i < keys.Length; i++)
                {
                    keys[i].copy_(keys[i].index_select(0, rows));
                    values[i].copy_(values[i].index_select(0, rows));
                                        if (cross[i] is { } c)
                    {
                        cross[i] = (c.Keys.index_select(0, rows).DetachFromDisposeScope(), c.Values.index_select(0, rows).DetachFromDisposeScope());
                        c.Keys.Dispose();
                        c.Values.Dispose();
                    }
                }
            }
        }

        public void Dispose()
        {
            foreach (var t in keys) t.Dispose();
            foreach (var t in values) t.Dispose();
            foreach (var c in cross)
                if (c is { } kv) { kv.Keys.Dispose(); kv.Values.Dispose(); }
        }
    }
}
