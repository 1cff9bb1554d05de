using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // Token embeddings (a gather and its scatter-add) and learned positions (added in place), forward and backward.
    //
    // The gathers and position additions are element-wise over [tokens, channels]: auto-grouped, one thread per element,
    // consecutive threads on consecutive channels (coalesced rows). The token-embedding backward must add the gradients
    // of all tokens with one id into one table row, deterministically and without float atomics, so it sorts first:
    //  1. EmbeddingSortKernel: a stable counting sort on the device. Token t goes to position
    //     #{t' : id(t') < id(t)} + #{t' < t : id(t') = id(t)}, counted by its thread over all ids staged through shared
    //     memory in tiles of 256 (every thread reads the same slot: a broadcast). O(tokens^2) comparisons, no atomics:
    //     for GPT-2's 8 x 1024 tokens, 67M compare-adds spread over 8192 threads, tens of microseconds on an H100, and
    //     no scratch beyond the order; a radix sort would win from about 10^5 tokens per step.
    //  2. EmbeddingSegmentSumKernel: for each run of equal ids (first position of the run) and channel, one thread adds
    //     the run's gradient rows in token order and adds the sum to the table row: every table row written by exactly one
    //     thread, the result independent of the launch geometry. The run length is found first, then the rows are read
    //     four at a time so a frequent token (hundreds of occurrences in 8192 tokens) keeps several loads in flight.
    public sealed partial class Kernels
    {
        /// <summary>Threads per group of the sort (and the tile of ids staged in shared memory).</summary>
        internal const int EmbeddingSortGroupSize = 256;

        /// <summary>output[t, :] = table[ids[t], :]. The host has checked every id against the vocabulary.</summary>
        public void EmbeddingForward(ArrayView<float> output, ArrayView<int> ids, ArrayView<float> table, int tokens, int channels)
        {
            const string kernel = nameof(EmbeddingForward);
            Check.Positive(kernel, nameof(tokens), tokens);
            Check.Positive(kernel, nameof(channels), channels);
            Check.Length(kernel, nameof(output), output, (long)tokens * channels);
            Check.Length(kernel, nameof(ids), ids, tokens);
            Check.Length(kernel, nameof(table), table, channels);
            Load(nameof(EmbeddingForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(EmbeddingForwardKernel))
                (Check.IndexRange(kernel, output.SubView(0, (long)tokens * channels)), output, ids, table, channels);
        }

        /// <summary>dTable[v, :] += the sum, in token order, of dOutput[t, :] over the tokens t with ids[t] = v.</summary>
        public void EmbeddingBackward(ArrayView<float> dTable, ArrayView<float> dOutput, ArrayView<int> ids, int tokens, int channels, int vocab)
        {
            const string kernel = nameof(EmbeddingBackward);
            Check.Positive(kernel, nameof(tokens), tokens);
            Check.Positive(kernel, nameof(channels), channels);
            Check.Positive(kernel, nameof(vocab), vocab);
            Check.Length(kernel, nameof(dTable), dTable, (long)vocab * channels);
            Check.Length(kernel, nameof(dOutput), dOutput, (long)tokens * channels);
            Check.Length(kernel, nameof(ids), ids, tokens);
            var order = Scratch<int>(nameof(EmbeddingBackward), 2L * tokens);
            var sortedIds = order.SubView(tokens, tokens);
            order = order.SubView(0, tokens);
            Load(nameof(EmbeddingSortKernel), acc => acc.LoadStreamKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, int>(EmbeddingSortKernel))
                (new KernelConfig(GroupsFor(tokens, EmbeddingSortGroupSize), EmbeddingSortGroupSize), order, sortedIds, ids, tokens);
            Load(nameof(EmbeddingSegmentSumKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>,
                    ArrayView<int>, int, int>(EmbeddingSegmentSumKernel))
                (Check.IndexRange(kernel, dOutput.SubView(0, (long)tokens * channels)), dTable, dOutput, order, sortedIds, tokens, channels);
        }

        /// <summary>
        /// output[b, t, :] += table[offset + t, :] for learned positions added to the token embeddings in place;
        /// <paramref name="offset"/> is the position of the first token (the cache length when decoding).
        /// </summary>
        public void PositionsForward(ArrayView<float> output, ArrayView<float> table, int batch, int time, int channels, int offset)
        {
            const string kernel = nameof(PositionsForward);
            CheckPositions(kernel, output, table, batch, time, channels, offset);
            Load(nameof(PositionsForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>(PositionsForwardKernel))
                (Check.IndexRange(kernel, output.SubView(0, (long)batch * time * channels)), output, table, time, channels, offset);
        }

        /// <summary>dTable[offset + t, :] += the sum over the batch (in batch order) of dOutput[b, t, :].</summary>
        public void PositionsBackward(ArrayView<float> dTable, ArrayView<float> dOutput, int batch, int time, int channels, int offset)
        {
            const string kernel = nameof(PositionsBackward);
            CheckPositions(kernel, dOutput, dTable, batch, time, channels, offset);
            Load(nameof(PositionsBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int, int>(PositionsBackwardKernel))
                (Check.IndexRange(kernel, dOutput.SubView(0, (long)time * channels)), dTable, dOutput, batch, time, channels, offset);
        }

        private static void CheckPositions(string kernel, ArrayView<float> activations, ArrayView<float> table, int batch, int time, int channels, int offset)
        {
            Check.Positive(kernel, nameof(batch), batch);
            Check.Positive(kernel, nameof(time), time);
            Check.Positive(kernel, nameof(channels), channels);
            if (offset < 0) throw new System.ArgumentOutOfRangeException(nameof(offset), offset, $"{kernel}: offset must be >= 0.");
            bool forward = kernel != nameof(PositionsBackward);
            Check.Length(kernel, forward ? "output" : "dOutput", activations, (long)batch * time * channels);
            Check.Length(kernel, forward ? nameof(table) : "dTable", table, ((long)offset + time) * channels);
        }

        [Kernel]
        internal static void EmbeddingForwardKernel(Index1D i, ArrayView<float> output, ArrayView<int> ids, ArrayView<float> table, int channels)
            => output[i] = table[(long)ids[i / channels] * channels + i % channels];

        /// <summary>Stable counting sort of the token positions by id (see the comment above the class).</summary>
        [Kernel(EmbeddingSortGroupSize)]
        internal static void EmbeddingSortKernel(ArrayView<int> order, ArrayView<int> sortedIds, ArrayView<int> ids, int tokens)
        {
            var tile = SharedMemory.Allocate<int>(EmbeddingSortGroupSize);
            int t = Grid.GlobalIndex.X;
            int id = t < tokens ? ids[t] : int.MaxValue;
            int position = 0;
            for (int start = 0; start < tokens; start += EmbeddingSortGroupSize)
            {
                int j = start + Group.IdxX;
                tile[Group.IdxX] = j < tokens ? ids[j] : int.MaxValue;
                Group.Barrier();
                int count = XMath.Min(EmbeddingSortGroupSize, tokens - start);
                for (int k = 0; k < count; k++)
                {
                    int other = tile[k];
                    if (other < id || (other == id && start + k < t)) position++;
                }
                Group.Barrier(); // the tile is overwritten next
            }
            if (t < tokens)
            {
                order[position] = t;
                sortedIds[position] = id;
            }
        }

        /// <summary>
        /// The backward of a gather is a scatter-add: d table[v, c] = sum over t with ids[t] = v of dOutput[t, c]. Thread
        /// (p, c) works only when sorted position p starts a run of equal ids.
        /// </summary>
        [Kernel]
        internal static void EmbeddingSegmentSumKernel(Index1D i, ArrayView<float> dTable, ArrayView<float> dOutput, ArrayView<int> order,
            ArrayView<int> sortedIds, int tokens, int channels)
        {
            int p = i / channels, c = i % channels;
            int id = sortedIds[p];
            if (p > 0 && sortedIds[p - 1] == id) return;
            int end = p + 1;
            while (end < tokens && sortedIds[end] == id) end++;
            float sum = 0f;
            int q = p;
            for (; q + 4 <= end; q += 4)
            {
                // four independent loads in flight, added in token order
                float a = dOutput[(long)order[q] * channels + c];
                float b = dOutput[(long)order[q + 1] * channels + c];
                float d = dOutput[(long)order[q + 2] * channels + c];
                float e = dOutput[(long)order[q + 3] * channels + c];
                sum = sum + a + b + d + e;
            }
            for (; q < end; q++) sum += dOutput[(long)order[q] * channels + c];
            dTable[(long)id * channels + c] += sum;
        }

        [Kernel]
        internal static void PositionsForwardKernel(Index1D i, ArrayView<float> output, ArrayView<float> table, int time, int channels, int offset)
        {
            int t = i / channels % time, c = i % channels;
            output[i] += table[(long)(offset + t) * channels + c];
        }

        /// <summary>One thread per (t, c) adds the batch's gradients in batch order: d table[offset + t] = sum_b dOutput[b, t].</summary>
        [Kernel]
        internal static void PositionsBackwardKernel(Index1D i, ArrayView<float> dTable, ArrayView<float> dOutput, int batch, int time, int channels, int offset)
        {
            int t = i / channels, c = i % channels;
            float sum = 0f;
            for (int b = 0; b < batch; b++) sum += dOutput[((long)b * time + t) * channels + c];
            dTable[(long)(offset + t) * channels + c] += sum;
        }
    }
}
