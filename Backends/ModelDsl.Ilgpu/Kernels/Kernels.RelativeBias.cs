using System;
using System.Collections.Generic;
using ILGPU;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // T5's relative position bias: bias[h, i, j] = table[bucket(j - i), h], the attention's additive bias for query i
    // and key j, shared by every layer of a stack and every sequence of the batch. The bucket of a relative position
    // depends on nothing else, so the host computes it once per (direction, buckets, max distance) for distances
    // -R..R, exactly as Hugging Face's _relative_position_bucket (and the TorchSharp backend) does in float32, and the
    // kernels look it up. The backward is the gather's scatter-add: dTable[b, h] = the sum of dBias[h, i, j] over the
    // (i, j) whose bucket is b. One thread per (bucket, head) walks the distances in order and, for each distance in
    // its bucket, the diagonal of queries, so every table entry is written by one thread in a fixed order (no atomics).
    public sealed partial class Kernels
    {
        private readonly Dictionary<string, MemoryBuffer1D<int, Stride1D.Dense>> bucketTables = new();

        /// <summary>bias [heads, time, keyTime] = table [buckets, heads] at the bucket of each relative position (key - query).</summary>
        public void RelativePositionBiasForward(ArrayView<float> bias, ArrayView<float> table, int heads, int time, int keyTime,
            bool bidirectional, int buckets, int maxDistance)
        {
            const string kernel = nameof(RelativePositionBiasForward);
            var layout = CheckRelativeBias(kernel, bias, table, heads, time, keyTime, bidirectional, buckets, maxDistance);
            Load(nameof(RelativePositionBiasForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, RelativeBiasLayout>(RelativePositionBiasForwardKernel))
                (Check.IndexRange(kernel, bias.SubView(0, (long)heads * time * keyTime)), bias, table, BucketTable(bidirectional, buckets, maxDistance, layout.Reach), layout);
        }

        /// <summary>dTable [buckets, heads] += the sums of dBias [heads, time, keyTime] over the positions of each bucket.</summary>
        public void RelativePositionBiasBackward(ArrayView<float> dTable, ArrayView<float> dBias, int heads, int time, int keyTime,
            bool bidirectional, int buckets, int maxDistance)
        {
            const string kernel = nameof(RelativePositionBiasBackward);
            var layout = CheckRelativeBias(kernel, dBias, dTable, heads, time, keyTime, bidirectional, buckets, maxDistance);
            Load(nameof(RelativePositionBiasBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, RelativeBiasLayout>(RelativePositionBiasBackwardKernel))
                (buckets * heads, dTable, dBias, BucketTable(bidirectional, buckets, maxDistance, layout.Reach), layout);
        }

        /// <summary>
        /// T5's bucket of a relative position (key - query), as Hugging Face's _relative_position_bucket computes it in
        /// float32: bidirectional attention gives half the buckets to keys after the query; in each half the first
        /// buckets/2 distances have a bucket each and larger ones share logarithmically spaced buckets up to
        /// <paramref name="maxDistance"/>, beyond which all share the last. Causal attention only looks back.
        /// </summary>
        public static int RelativePositionBucket(int relative, bool bidirectional, int buckets, int maxDistance)
        {
            int bucket = 0;
            if (bidirectional)
            {
                buckets /= 2;
                if (relative > 0) bucket = buckets;
                relative = Math.Abs(relative);
            }
            else relative = -Math.Min(relative, 0);
            int exact = buckets / 2;
            if (relative < exact) return bucket + relative;
            float large = exact + MathF.Log((float)relative / exact) / (float)Math.Log((double)maxDistance / exact) * (buckets - exact);
            return bucket + Math.Min((int)large, buckets - 1);
        }

        private static RelativeBiasLayout CheckRelativeBias(string kernel, ArrayView<float> bias, ArrayView<float> table, int heads, int time, int keyTime,
            bool bidirectional, int buckets, int maxDistance)
        {
            Check.Positive(kernel, nameof(heads), heads);
            Check.Positive(kernel, nameof(time), time);
            Check.Positive(kernel, nameof(keyTime), keyTime);
            if (buckets < (bidirectional ? 4 : 2))
                throw new ArgumentOutOfRangeException(nameof(buckets), buckets, $"{kernel}: {(bidirectional ? "bidirectional" : "causal")} attention needs at least {(bidirectional ? 4 : 2)} buckets.");
            int exact = (bidirectional ? buckets / 2 : buckets) / 2;
            if (maxDistance <= exact)
                throw new ArgumentOutOfRangeException(nameof(maxDistance), maxDistance, $"{kernel}: the max distance must exceed the {exact} exact buckets.");
            bool forward = kernel == nameof(RelativePositionBiasForward);
            Check.Length(kernel, forward ? nameof(bias) : "dBias", bias, Check.Indexable(kernel, "bias", (long)heads * time * keyTime));
            Check.Length(kernel, forward ? nameof(table) : "dTable", table, (long)buckets * heads);
            return new RelativeBiasLayout(heads, time, keyTime, Math.Max(time, keyTime));
        }

        /// <summary>The buckets of the relative positions -reach..reach (index r + reach), kept per direction and size, grown on demand.</summary>
        private ArrayView<int> BucketTable(bool bidirectional, int buckets, int maxDistance, int reach)
        {
            string key = $"{bidirectional} {buckets} {maxDistance}";
            bucketTables.TryGetValue(key, out var existing);
            if (existing is not null && existing.Length >= 2L * reach + 1) return existing.View;
            if (existing is not null) { Accelerator.Synchronize(); existing.Dispose(); } // a kernel in flight may read the old table
            int held = Math.Max(reach, existing is null ? 0 : (int)(existing.Length - 1)); // doubles the reach: (2R + 1 - 1) = 2R
            var values = new int[2 * held + 1];
            for (int r = -held; r <= held; r++) values[r + held] = RelativePositionBucket(r, bidirectional, buckets, maxDistance);
            var table = Accelerator.Allocate1D(values);
            bucketTables[key] = table;
            return table.View;
        }

        /// <summary>The bias's sizes, and how far the kernels' bucket table reaches (a view of distances -Reach..Reach, possibly longer).</summary>
        internal readonly record struct RelativeBiasLayout(int Heads, int Time, int KeyTime, int Reach);

        [Kernel]
        internal static void RelativePositionBiasForwardKernel(Index1D i, ArrayView<float> bias, ArrayView<float> table, ArrayView<int> bucketOf, RelativeBiasLayout l)
        {
            int j = i % l.KeyTime, q = i / l.KeyTime % l.Time, h = i / l.KeyTime / l.Time;
            int center = (int)(bucketOf.Length / 2);
            bias[i] = table[bucketOf[center + j - q] * l.Heads + h];
        }

        /// <summary>Thread (bucket, head): the distances of its bucket in order, for each the queries in order.</summary>
        [Kernel]
        internal static void RelativePositionBiasBackwardKernel(Index1D i, ArrayView<float> dTable, ArrayView<float> dBias, ArrayView<int> bucketOf, RelativeBiasLayout l)
        {
            int bucket = i / l.Heads, h = i % l.Heads;
            int center = (int)(bucketOf.Length / 2);
            float sum = 0f;
            for (int r = 1 - l.Time; r < l.KeyTime; r++)
            {
                if (bucketOf[center + r] != bucket) continue;
                // queries q with a key j = q + r inside [0, KeyTime)
                int first = r < 0 ? -r : 0, last = l.KeyTime - r < l.Time ? l.KeyTime - r : l.Time;
                for (int q = first; q < last; q++)
                    sum += dBias[((long)h * l.Time + q) * l.KeyTime + q + r];
            }
            dTable[i] += sum;
        }
    }
}
