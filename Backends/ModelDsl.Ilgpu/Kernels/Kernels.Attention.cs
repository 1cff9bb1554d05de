using System;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// The shape of one attention call. Queries q [Batch, Time, Heads*HeadDim] and keys and values
    /// [Batch, KeyTime, KvHeads*HeadDim] are views whose rows lie QueryStride, KeyStride, ValueStride floats apart, so
    /// they can be column slices of a fused qkv buffer (q = qkv.SubView(0), k = qkv.SubView(Hidden), v =
    /// qkv.SubView(2 Hidden), all with stride 3 Hidden). Query head h reads kv head h / (Heads / KvHeads) (grouped
    /// queries). Query i sits at position QueryOffset + i (a decoding step's queries after a cache of QueryOffset keys);
    /// key j is visible to it when (!Causal or j &lt;= QueryOffset + i) and (Window == 0 or j &gt; QueryOffset + i - Window)
    /// and keyPadding[b, j] != 0 (when a padding mask is given). Scores are Scale q.k + bias[h, i, j] (bias optional).
    /// With <see cref="Dropout"/> &gt; 0 (training), each attention probability P[b, h, i, j] is kept with probability
    /// 1 - Dropout and scaled by 1 / (1 - Dropout), its mask drawn from (<see cref="DropoutSeed"/>, its index) as the
    /// dropout kernel draws; the backward passes regenerate the same mask from the same seed.
    /// </summary>
    public readonly record struct AttentionShape(int Batch, int Heads, int KvHeads, int HeadDim, int Time, int KeyTime,
        int QueryOffset, bool Causal, int Window, float Scale, int QueryStride, int KeyStride, int ValueStride,
        float Dropout = 0f, ulong DropoutSeed = 0);

    /// <summary>
    /// <see cref="AttentionShape"/> as the attention kernels read it: flags as ints, and the sizes that follow from the
    /// shape computed once on the host.
    /// </summary>
    internal readonly struct AttentionLayout
    {
        public readonly int Batch, Heads, KvHeads, HeadDim, Time, KeyTime, QueryOffset, Causal, Window, QueryStride, KeyStride, ValueStride;
        public readonly float Scale;

        /// <summary>Dropout on the probabilities: draws below DropThreshold (of 2^24) are dropped, kept ones scaled by KeepScale; 0: none.</summary>
        public readonly uint DropThreshold;
        public readonly float KeepScale;
        public readonly ulong DropoutSeed;

        /// <summary>Query heads that share one kv head.</summary>
        public readonly int HeadsPerKvHead;

        /// <summary>HeadDim rounded up to a warp: lane l holds dimensions l, l + 32, ... of a row (at most 4).</summary>
        public readonly int PaddedDim;

        /// <summary>
        /// Floats between rows staged in shared memory: PaddedDim + 1, odd, so that 32 lanes reading 32 different rows
        /// at one column hit 32 different banks; columns HeadDim..PaddedDim are zeros.
        /// </summary>
        public readonly int RowStride;

        public AttentionLayout(AttentionShape shape)
        {
            (Batch, Heads, KvHeads, HeadDim, Time, KeyTime) = (shape.Batch, shape.Heads, shape.KvHeads, shape.HeadDim, shape.Time, shape.KeyTime);
            (QueryOffset, Causal, Window, Scale) = (shape.QueryOffset, shape.Causal ? 1 : 0, shape.Window, shape.Scale);
            (QueryStride, KeyStride, ValueStride) = (shape.QueryStride, shape.KeyStride, shape.ValueStride);
            HeadsPerKvHead = shape.Heads / shape.KvHeads;
            DropThreshold = Kernels.DropThreshold(shape.Dropout);
            KeepScale = shape.Dropout < 1f ? (float)(1.0 / (1.0 - shape.Dropout)) : 0f;
            DropoutSeed = shape.DropoutSeed;
            PaddedDim = (shape.HeadDim + 31) / 32 * 32;
            RowStride = PaddedDim + 1;
        }

        /// <summary>Register columns a lane holds: PaddedDim / 32.</summary>
        public int Columns => PaddedDim / 32;
    }

    /// <summary>
    /// One row of up to 128 floats spread over a warp, in registers: lane l holds dimensions l, l + 32, l + 64, l + 96
    /// (scalar fields, not an array: ILGPU 1.5.3 does not unroll loops, and an indexed array would live in local memory).
    /// </summary>
    internal struct LaneRow
    {
        public float X0, X1, X2, X3;

        public readonly LaneRow Scaled(float factor) => new() { X0 = X0 * factor, X1 = X1 * factor, X2 = X2 * factor, X3 = X3 * factor };

        /// <summary>This + weight * the shared row whose element for this lane's first dimension is at <paramref name="index"/>.</summary>
        public readonly LaneRow PlusScaled(float weight, ArrayView<float> shared, int index, int columns)
        {
            var result = this;
            result.X0 += weight * shared[index];
            if (columns > 1) result.X1 += weight * shared[index + 32];
            if (columns > 2) result.X2 += weight * shared[index + 64];
            if (columns > 3) result.X3 += weight * shared[index + 96];
            return result;
        }

        /// <summary>target[start + d] = factor * row[d] for d &lt; length.</summary>
        public readonly void Store(ArrayView<float> target, int start, int length, float factor)
        {
            int d = Warp.LaneIdx;
            if (d < length) target[start + d] = factor * X0;
            if (d + 32 < length) target[start + d + 32] = factor * X1;
            if (d + 64 < length) target[start + d + 64] = factor * X2;
            if (d + 96 < length) target[start + d + 96] = factor * X3;
        }

        /// <summary>target[start + d] += factor * row[d] for d &lt; length.</summary>
        public readonly void AddTo(ArrayView<float> target, int start, int length, float factor)
        {
            int d = Warp.LaneIdx;
            if (d < length) target[start + d] += factor * X0;
            if (d + 32 < length) target[start + d + 32] += factor * X1;
            if (d + 64 < length) target[start + d + 64] += factor * X2;
            if (d + 96 < length) target[start + d + 96] += factor * X3;
        }
    }

    // Flash attention (FlashAttention-2's schedule on SIMT cores): forward with an online softmax, backward recomputing
    // the probabilities from the saved log-sum-exp; no Time x KeyTime matrix is ever stored.
    //
    // Backward, for one query i over its visible keys j: S_ij = Scale q_i.k_j + bias_ij, L_i = log sum_j exp S_ij,
    // P_ij = exp(S_ij - L_i), O_i = sum_j P_ij v_j. Given dO_i:
    //   dv_j = sum_i P_ij dO_i                              (O is linear in v)
    //   dP_ij = dO_i . v_j
    //   dS_ij = P_ij (dP_ij - sum_l P_il dP_il)             (softmax's Jacobian, diag(P) - P P^T)
    //         = P_ij (dP_ij - D_i), D_i = dO_i . O_i        (sum_l P_il dO_i . v_l = dO_i . O_i)
    //   dq_i = Scale sum_j dS_ij k_j,  dk_j = Scale sum_i dS_ij q_i,  dbias_ij = sum over the batch of dS_ij
    // (grouped queries: dk and dv of a kv head sum over its query heads). With dropout on the probabilities, O_i =
    // sum_j M_ij P_ij v_j (M_ij = 0 or 1 / (1 - rate), regenerated from the seed): dv_j = sum_i M_ij P_ij dO_i,
    // dP_ij = M_ij dO_i . v_j, and D_i = dO_i . O_i still holds (O is the dropped output). Three sweeps, each writing its outputs alone,
    // so no atomics: D and P are recomputed where needed (P from q, k and the saved L), dk and dv by key tiles, dq and
    // dbias by query tiles. docs/ilgpu-kernels.md has the parallelisation and the measurements.
    public sealed partial class Kernels
    {
        /// <summary>The largest head dimension: a lane holds 4 columns of a row (128 = 4 x 32).</summary>
        public const int AttentionMaxHeadDim = 128;

        private const int AttentionWarps = 8;
        private const int AttentionGroupSize = AttentionWarps * 32;
        private const int AttentionKeyTile = 32;   // forward and dq: keys staged per step, one per lane
        private const int AttentionQueryTile = 32; // dk/dv: queries staged per step, one per lane

        // Shared memory of each kernel in floats for a staged row of rowStride floats; the launchers request these, and
        // the [Kernel] attributes declare them at the largest head dimension (row stride 129) for the ptxas report.
        private const int AttentionMaxRowStride = AttentionMaxHeadDim + 1;
        private const int AttentionForwardFloatsPerRow = AttentionWarps + 2 * AttentionKeyTile, AttentionForwardFloats = AttentionWarps * AttentionKeyTile;
        private const int AttentionKeyValueFloatsPerRow = 2 * AttentionQueryTile + 2 * AttentionWarps, AttentionKeyValueFloats = AttentionQueryTile * (32 + 1) + AttentionWarps * 2 * AttentionQueryTile;
        private const int AttentionQueryFloatsPerRow = 2 * AttentionWarps + 2 * AttentionKeyTile, AttentionQueryFloats = AttentionWarps * AttentionKeyTile;

        /// <summary>
        /// Flash attention forward: output [Batch, Time, Heads*HeadDim] (dense) = softmax(Scale q k^T + bias, masked) v,
        /// and lse [Batch, Heads, Time] = the log-sum-exp of each query's visible scores, which the backward needs.
        /// keyPadding [Batch, KeyTime] (1 = a real token) and bias [Heads, Time, KeyTime] are optional (<c>default</c>).
        /// A query that sees no key at all (a left-padded row under a causal mask, a fully padded sequence) attends
        /// uniformly to all KeyTime keys: that is what libtorch gives for the TorchSharp backend's additive mask (masked
        /// scores get float.MinValue, which absorbs any score or bias), and its lse is float.MinValue, which is also
        /// libtorch's float32 logsumexp of those masked scores; the backward recognises such rows by it.
        /// </summary>
        public void AttentionForward(ArrayView<float> output, ArrayView<float> lse, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
            ArrayView<int> keyPadding, ArrayView<float> bias, AttentionShape shape)
        {
            var layout = CheckAttention(nameof(AttentionForward), shape, q, k, v, keyPadding, bias);
            Check.Length(nameof(AttentionForward), nameof(output), output, (long)shape.Batch * shape.Time * shape.Heads * shape.HeadDim);
            Check.Length(nameof(AttentionForward), nameof(lse), lse, (long)shape.Batch * shape.Heads * shape.Time);
            int groups = shape.Batch * shape.Heads * GroupsFor(shape.Time, AttentionWarps);
            // Staged rows: 8 queries, 32 keys, 32 values; then the warps' weights.
            var config = new KernelConfig(groups, AttentionGroupSize, SharedMemoryConfig.RequestDynamic<float>(
                AttentionForwardFloatsPerRow * layout.RowStride + AttentionForwardFloats));
            Load(nameof(AttentionForwardKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<int>, ArrayView<float>, AttentionLayout>(AttentionForwardKernel))(config, output, lse, q, k, v, keyPadding, bias, layout);
        }

        /// <summary>
        /// Flash attention backward: dq, dk, dv (laid out and strided like q, k, v) and dBias [Heads, Time, KeyTime]
        /// (optional, summed over the batch) += the gradients of the loss whose gradient with respect to the output is
        /// dOutput [Batch, Time, Heads*HeadDim]; output and lse are <see cref="AttentionForward"/>'s. dq, dk and dv may
        /// be column slices of one dqkv buffer: two launches write them, one after the other. A query that sees no key
        /// (see <see cref="AttentionForward"/>) passes dO / KeyTime to every value and nothing to q, k or the bias: the
        /// exact derivative of the mean its forward computes (libtorch's autograd instead differentiates the masked
        /// softmax as if float.MinValue had not absorbed the scores; docs/ilgpu-kernels.md compares the two).
        /// </summary>
        public void AttentionBackward(ArrayView<float> dq, ArrayView<float> dk, ArrayView<float> dv, ArrayView<float> dBias,
            ArrayView<float> dOutput, ArrayView<float> output, ArrayView<float> lse, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
            ArrayView<int> keyPadding, ArrayView<float> bias, AttentionShape shape)
        {
            const string name = nameof(AttentionBackward);
            var layout = CheckAttention(name, shape, q, k, v, keyPadding, bias);
            long outputLength = (long)shape.Batch * shape.Time * shape.Heads * shape.HeadDim;
            Check.Length(name, nameof(dOutput), dOutput, outputLength);
            Check.Length(name, nameof(output), output, outputLength);
            Check.Length(name, nameof(lse), lse, (long)shape.Batch * shape.Heads * shape.Time);
            Check.Length(name, nameof(dq), dq, q.Length);
            Check.Length(name, nameof(dk), dk, StridedLength(shape.Batch * shape.KeyTime, shape.KeyStride, shape.KvHeads * shape.HeadDim));
            Check.Length(name, nameof(dv), dv, StridedLength(shape.Batch * shape.KeyTime, shape.ValueStride, shape.KvHeads * shape.HeadDim));
            if (dBias.Length > 0) Check.Length(name, nameof(dBias), dBias, (long)shape.Heads * shape.Time * shape.KeyTime);

            int keyValueGroups = shape.Batch * shape.KvHeads * GroupsFor(shape.KeyTime, AttentionWarps);
            Load(nameof(AttentionKeyValueGradientKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, AttentionLayout>(AttentionKeyValueGradientKernel))
                // Staged rows: 32 queries, 32 output gradients, 8 keys, 8 values; then 32 x 33 partial sums of D and the warps' weights.
                (new KernelConfig(keyValueGroups, AttentionGroupSize, SharedMemoryConfig.RequestDynamic<float>(
                    AttentionKeyValueFloatsPerRow * layout.RowStride + AttentionKeyValueFloats)),
                 dk, dv, dOutput, output, lse, q, k, v, keyPadding, bias, layout);

            // With a bias gradient a group walks the whole batch, so that it alone sums dBias[h, i, :] over the batch.
            int queryGroups = (dBias.Length > 0 ? 1 : shape.Batch) * shape.Heads * GroupsFor(shape.Time, AttentionWarps);
            Load(nameof(AttentionQueryGradientKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, AttentionLayout>(AttentionQueryGradientKernel))
                // Staged rows: 8 queries, 8 output gradients, 32 keys, 32 values; then the warps' weights.
                (new KernelConfig(queryGroups, AttentionGroupSize, SharedMemoryConfig.RequestDynamic<float>(
                    AttentionQueryFloatsPerRow * layout.RowStride + AttentionQueryFloats)),
                 dq, dBias, dOutput, output, lse, q, k, v, keyPadding, bias, layout);
        }

        private static AttentionLayout CheckAttention(string launcher, AttentionShape shape, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
            ArrayView<int> keyPadding, ArrayView<float> bias)
        {
            Check.Positive(launcher, nameof(shape.Batch), shape.Batch);
            Check.Positive(launcher, nameof(shape.Heads), shape.Heads);
            Check.Positive(launcher, nameof(shape.KvHeads), shape.KvHeads);
            Check.Positive(launcher, nameof(shape.HeadDim), shape.HeadDim);
            Check.Positive(launcher, nameof(shape.Time), shape.Time);
            Check.Positive(launcher, nameof(shape.KeyTime), shape.KeyTime);
            if (shape.Heads % shape.KvHeads != 0)
                throw new ArgumentException($"{launcher}: Heads ({shape.Heads}) is not a multiple of KvHeads ({shape.KvHeads}).", nameof(shape));
            if (shape.HeadDim > AttentionMaxHeadDim)
                throw new ArgumentOutOfRangeException(nameof(shape), shape.HeadDim, $"{launcher}: HeadDim {shape.HeadDim} exceeds {AttentionMaxHeadDim}.");
            if (shape.QueryOffset < 0 || shape.Window < 0)
                throw new ArgumentOutOfRangeException(nameof(shape), $"{launcher}: QueryOffset ({shape.QueryOffset}) and Window ({shape.Window}) must not be negative.");
            if (!float.IsFinite(shape.Scale))
                throw new ArgumentOutOfRangeException(nameof(shape), shape.Scale, $"{launcher}: Scale must be finite.");
            if (!(shape.Dropout >= 0f && shape.Dropout < 1f))
                throw new ArgumentOutOfRangeException(nameof(shape), shape.Dropout, $"{launcher}: Dropout must be in [0, 1).");
            CheckStride(launcher, nameof(shape.QueryStride), shape.QueryStride, shape.Heads * shape.HeadDim);
            CheckStride(launcher, nameof(shape.KeyStride), shape.KeyStride, shape.KvHeads * shape.HeadDim);
            CheckStride(launcher, nameof(shape.ValueStride), shape.ValueStride, shape.KvHeads * shape.HeadDim);
            Check.Indexable(launcher, "output", (long)shape.Batch * shape.Time * shape.Heads * shape.HeadDim);
            Check.Length(launcher, nameof(q), q, StridedLength(shape.Batch * (long)shape.Time, shape.QueryStride, shape.Heads * shape.HeadDim));
            Check.Length(launcher, nameof(k), k, StridedLength(shape.Batch * (long)shape.KeyTime, shape.KeyStride, shape.KvHeads * shape.HeadDim));
            Check.Length(launcher, nameof(v), v, StridedLength(shape.Batch * (long)shape.KeyTime, shape.ValueStride, shape.KvHeads * shape.HeadDim));
            if (keyPadding.Length > 0) Check.Length(launcher, nameof(keyPadding), keyPadding, (long)shape.Batch * shape.KeyTime);
            if (bias.Length > 0) Check.Length(launcher, nameof(bias), bias, Check.Indexable(launcher, nameof(bias), (long)shape.Heads * shape.Time * shape.KeyTime));
            return new AttentionLayout(shape);
        }

        private static void CheckStride(string launcher, string name, int stride, int rowLength)
        {
            if (stride < rowLength)
                throw new ArgumentOutOfRangeException(name, stride, $"{launcher}: {name} ({stride}) is shorter than a row ({rowLength} floats).");
        }

        /// <summary>Elements a view of <paramref name="rows"/> rows <paramref name="stride"/> apart spans (checked for 32-bit indexing).</summary>
        private static long StridedLength(long rows, int stride, int rowLength)
            => Check.Indexable("Attention", "a strided view", (rows - 1) * stride + rowLength);

        // ---------------------------------------------------------------- forward

        /// <summary>
        /// One group per (batch, head, 8 queries); warp w owns query query0 + w, lane l owns key key0 + l of each staged
        /// tile of 32 keys and columns l + 32c of the output row. Per key tile the lane computes its key's score from the
        /// staged query row (a broadcast read) and key row (odd stride: conflict-free), the warp takes the tile maximum
        /// by shuffles and rescales its output and its lanes' partial sums (online softmax), and each lane writes its
        /// weight p to the warp's slot in shared memory, from which the warp accumulates sum_j p_j v_j: p_j a broadcast
        /// read, v_j read row-wise (consecutive words); masked keys (p_j = 0) are skipped by the whole warp. Causal and
        /// window masks bound the key tiles a group visits, and query tiles run in reverse so the longest causal rows
        /// start first. Shared memory: 72 rows of RowStride floats and 8 x 32 weights, 38 KB at HeadDim 128. Per query
        /// and key: 2 HeadDim multiply-adds from about 2 HeadDim shared reads, so the kernel is bound by shared-memory
        /// bandwidth rather than by the FMA units.
        /// </summary>
        [Kernel(AttentionGroupSize, DynamicSharedMemoryBytes = sizeof(float) * (AttentionForwardFloatsPerRow * AttentionMaxRowStride + AttentionForwardFloats))]
        internal static void AttentionForwardKernel(ArrayView<float> output, ArrayView<float> lse, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
            ArrayView<int> keyPadding, ArrayView<float> bias, AttentionLayout layout)
        {
            var shared = SharedMemory.GetDynamic<float>();
            int stride = layout.RowStride, headDim = layout.HeadDim;
            int keyBase = AttentionWarps * stride, valueBase = keyBase + AttentionKeyTile * stride;
            int warp = Warp.WarpIdx, lane = Warp.LaneIdx;
            int weights = valueBase + AttentionKeyTile * stride + warp * AttentionKeyTile;
            int tiles = (layout.Time + AttentionWarps - 1) / AttentionWarps;
            int head = Grid.IdxX / tiles % layout.Heads, batch = Grid.IdxX / tiles / layout.Heads;
            int query0 = (tiles - 1 - Grid.IdxX % tiles) * AttentionWarps;
            int query = query0 + warp;
            bool rowValid = query < layout.Time;
            int kvHead = head / layout.HeadsPerKvHead;
            int queryRow = warp * stride;

            StageRow(shared, queryRow, q, (batch * layout.Time + query) * layout.QueryStride + head * headDim, rowValid, layout);
            int first = FirstVisibleKey(layout, query), end = VisibleKeyEnd(layout, query);
            bool empty = rowValid && !WarpAnyVisibleKey(keyPadding, layout, batch, first, end);
            bool anyEmpty = Group.BarrierOr(empty);
            int keyFirst = anyEmpty ? 0 : FirstVisibleKey(layout, query0);
            int keyEnd = anyEmpty ? layout.KeyTime : VisibleKeyEnd(layout, XMath.Min(layout.Time, query0 + AttentionWarps) - 1);

            long probabilityRow = (((long)batch * layout.Heads + head) * layout.Time + query) * layout.KeyTime; // dropout's draw index of key 0
            float max = float.NegativeInfinity, sum = 0; // sum: this lane's share, reduced over the warp at the end
            var o = default(LaneRow);
            for (int key0 = keyFirst - keyFirst % AttentionKeyTile; key0 < keyEnd; key0 += AttentionKeyTile)
            {
                int keys = XMath.Min(AttentionKeyTile, layout.KeyTime - key0);
                Group.Barrier(); // every warp is done with the previous tile
                StageRows(shared, keyBase, AttentionKeyTile, k, (batch * layout.KeyTime + key0) * layout.KeyStride + kvHead * headDim, layout.KeyStride, keys, layout);
                StageRows(shared, valueBase, AttentionKeyTile, v, (batch * layout.KeyTime + key0) * layout.ValueStride + kvHead * headDim, layout.ValueStride, keys, layout);
                Group.Barrier();

                int key = key0 + lane;
                float score = float.NegativeInfinity;
                if (empty)
                {
                    if (key < layout.KeyTime) score = 0f;
                }
                else if (rowValid && IsVisible(keyPadding, layout, batch, first, end, key))
                {
                    score = layout.Scale * SharedDot(shared, queryRow, keyBase + lane * stride, headDim);
                    if (bias.Length > 0) score += bias[(head * layout.Time + query) * layout.KeyTime + key];
                }
                float tileMax = WarpMax(score);
                if (tileMax == float.NegativeInfinity) continue; // the whole warp: nothing visible in this tile

                float newMax = XMath.Max(max, tileMax);
                float rescale = max == float.NegativeInfinity ? 0f : XMath.Exp(max - newMax);
                float p = score == float.NegativeInfinity ? 0f : XMath.Exp(score - newMax);
                sum = sum * rescale + p;
                max = newMax;
                // The normaliser sums the kept and the dropped; only the kept weigh the values (scaled up).
                shared[weights + lane] = p == 0f || layout.DropThreshold == 0 ? p : p * DropoutKeep(layout, probabilityRow + key);
                Warp.Barrier();
                o = o.Scaled(rescale);
                for (int j = 0; j < AttentionKeyTile; j++)
                {
                    float weight = shared[weights + j];
                    if (weight != 0f) o = o.PlusScaled(weight, shared, valueBase + j * stride + lane, layout.Columns);
                }
            }
            sum = WarpSum(sum);

            if (!rowValid) return;
            o.Store(output, (batch * layout.Time + query) * layout.Heads * headDim + head * headDim, headDim, 1f / sum);
            if (lane == 0) lse[(batch * layout.Heads + head) * layout.Time + query] = empty ? float.MinValue : max + XMath.Log(sum);
        }

        // ---------------------------------------------------------------- backward

        /// <summary>
        /// dk and dv. One group per (batch, kv head, 8 keys); warp w owns key key0 + w and holds dk and dv of that row in
        /// registers (lane l: columns l + 32c) while it walks every query head of its kv head (grouped queries are summed
        /// here, without atomics) and every tile of 32 queries that can see the group's keys or that holds a query with
        /// no visible key (its output is the mean of all values: it passes dO / KeyTime to each). Per query tile the group stages the q and dO rows (odd stride) and the
        /// partial sums of D_i = dO_i . O_i (coalesced reads of O, 32 partials a row, summed by lane i); lane l takes
        /// query l: P = exp(Scale q_l.k + bias - lse_l), dP = dO_l.v, dS = P (dP - D_l), written to the warp's slots in
        /// shared memory; then dv += sum_l P_l dO_l and dk += Scale sum_l dS_l q_l, the staged rows read row-wise and
        /// queries with P_l = 0 skipped. Shared memory: 80 rows of RowStride floats, 32 x 33 partials and 8 x 64
        /// weights, 47.5 KB at HeadDim 128 (the 48 KB a group gets).
        /// </summary>
        [Kernel(AttentionGroupSize, DynamicSharedMemoryBytes = sizeof(float) * (AttentionKeyValueFloatsPerRow * AttentionMaxRowStride + AttentionKeyValueFloats))]
        internal static void AttentionKeyValueGradientKernel(ArrayView<float> dk, ArrayView<float> dv, ArrayView<float> dOutput, ArrayView<float> output,
            ArrayView<float> lse, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<int> keyPadding, ArrayView<float> bias, AttentionLayout layout)
        {
            var shared = SharedMemory.GetDynamic<float>();
            int stride = layout.RowStride, headDim = layout.HeadDim;
            int gradientBase = AttentionQueryTile * stride, keyBase = 2 * AttentionQueryTile * stride;
            int valueBase = keyBase + AttentionWarps * stride, partialBase = valueBase + AttentionWarps * stride;
            int warp = Warp.WarpIdx, lane = Warp.LaneIdx;
            int weights = partialBase + AttentionQueryTile * (32 + 1) + warp * 2 * AttentionQueryTile; // P, then dS
            int tiles = (layout.KeyTime + AttentionWarps - 1) / AttentionWarps;
            int kvHead = Grid.IdxX / tiles % layout.KvHeads, batch = Grid.IdxX / tiles / layout.KvHeads;
            int key0 = Grid.IdxX % tiles * AttentionWarps;
            int key = key0 + warp;
            bool keyValid = key < layout.KeyTime;
            int keyRow = keyBase + warp * stride, valueRow = valueBase + warp * stride;
            int keyStart = (batch * layout.KeyTime + key) * layout.KeyStride + kvHead * headDim;
            int valueStart = (batch * layout.KeyTime + key) * layout.ValueStride + kvHead * headDim;
            StageRow(shared, keyRow, k, keyStart, keyValid, layout);
            StageRow(shared, valueRow, v, valueStart, keyValid, layout);
            bool keyUnpadded = keyValid && (keyPadding.Length == 0 || keyPadding[batch * layout.KeyTime + key] != 0);

            // The queries that can see a key of this group: causal needs position >= key0, a window position < lastKey + Window.
            int lastKey = XMath.Min(layout.KeyTime, key0 + AttentionWarps) - 1;
            int queryFirst = layout.Causal != 0 ? XMath.Max(0, key0 - layout.QueryOffset) : 0;
            int queryEnd = layout.Window > 0 ? XMath.Min(layout.Time, XMath.Max(0, lastKey + layout.Window - layout.QueryOffset)) : layout.Time;
            int outputStride = layout.Heads * headDim;

            var dkRow = default(LaneRow);
            var dvRow = default(LaneRow);
            for (int head = kvHead * layout.HeadsPerKvHead; head < (kvHead + 1) * layout.HeadsPerKvHead; head++)
            {
                for (int query0 = 0; query0 < layout.Time; query0 += AttentionQueryTile)
                {
                    int query = query0 + lane;
                    bool rowValid = query < layout.Time;
                    float rowLse = rowValid ? lse[(batch * layout.Heads + head) * layout.Time + query] : 0f;
                    bool empty = rowValid && rowLse == float.MinValue;
                    bool anyEmpty = Group.BarrierOr(empty); // also: every warp is done with the previous tile
                    if (!anyEmpty && (query0 >= queryEnd || query0 + AttentionQueryTile <= queryFirst)) continue;

                    int queries = XMath.Min(AttentionQueryTile, layout.Time - query0);
                    int gradientStart = (batch * layout.Time + query0) * outputStride + head * headDim;
                    StageRows(shared, 0, AttentionQueryTile, q, (batch * layout.Time + query0) * layout.QueryStride + head * headDim, layout.QueryStride, queries, layout);
                    StageRows(shared, gradientBase, AttentionQueryTile, dOutput, gradientStart, outputStride, queries, layout);
                    for (int r = warp; r < AttentionQueryTile; r += AttentionWarps) // the rows and columns this lane staged itself
                    {
                        float partial = 0;
                        if (r < queries)
                            for (int d = lane; d < headDim; d += 32)
                                partial += shared[gradientBase + r * stride + d] * output[gradientStart + r * outputStride + d];
                        shared[partialBase + r * (32 + 1) + lane] = partial;
                    }
                    Group.Barrier();

                    float p = 0, dScore = 0;
                    if (empty)
                    {
                        if (keyValid) p = 1f / layout.KeyTime; // its output is the mean of all values: dS = 0
                    }
                    else if (rowValid && keyUnpadded && key >= FirstVisibleKey(layout, query) && key < VisibleKeyEnd(layout, query))
                    {
                        float score = layout.Scale * SharedDot(shared, lane * stride, keyRow, headDim);
                        if (bias.Length > 0) score += bias[(head * layout.Time + query) * layout.KeyTime + key];
                        p = XMath.Exp(score - rowLse);
                    }
                    float keep = p == 0f ? 0f : AttentionKeep(layout, batch, head, query, key);
                    if (p != 0f && !empty)
                    {
                        float delta = 0;
                        for (int j = 0; j < 32; j++) delta += shared[partialBase + lane * (32 + 1) + j];
                        dScore = p * (keep * SharedDot(shared, gradientBase + lane * stride, valueRow, headDim) - delta);
                    }
                    shared[weights + lane] = p * keep;
                    shared[weights + AttentionQueryTile + lane] = dScore;
                    Warp.Barrier();
                    for (int r = 0; r < AttentionQueryTile; r++)
                    {
                        // A dropped weight has no dv term but still a dk term (through the normaliser).
                        float weight = shared[weights + r], weightGradient = shared[weights + AttentionQueryTile + r];
                        if (weight != 0f) dvRow = dvRow.PlusScaled(weight, shared, gradientBase + r * stride + lane, layout.Columns);
                        if (weightGradient != 0f) dkRow = dkRow.PlusScaled(weightGradient, shared, r * stride + lane, layout.Columns);
                    }
                }
            }

            if (!keyValid) return;
            dkRow.AddTo(dk, keyStart, headDim, layout.Scale);
            dvRow.AddTo(dv, valueStart, headDim, 1f);
        }

        /// <summary>
        /// dq and dBias. One group per (batch, head, 8 queries), or per (head, 8 queries) walking the whole batch when
        /// dBias is wanted, so that one thread sums dBias[h, i, j] over the batch in a fixed order. A query that sees no
        /// key adds nothing (its output, the mean of the values, depends neither on q nor on the bias). Warp w owns query
        /// query0 + w: it stages its q and dO rows and computes D_i = dO_i . O_i; for each staged tile of 32 keys and
        /// values lane l recomputes P = exp(Scale q.k_l + bias - lse_i), dP = dO_i . v_l, dS = P (dP - D_i), adds dS to
        /// dBias[h, i, l] and writes it to the warp's slots in shared memory, and the warp accumulates
        /// dq += Scale sum_l dS_l k_l (k_l read row-wise, keys with dS_l = 0 skipped). Shared memory: 80 rows of
        /// RowStride floats and 8 x 32 weights, 41 KB at HeadDim 128.
        /// </summary>
        [Kernel(AttentionGroupSize, DynamicSharedMemoryBytes = sizeof(float) * (AttentionQueryFloatsPerRow * AttentionMaxRowStride + AttentionQueryFloats))]
        internal static void AttentionQueryGradientKernel(ArrayView<float> dq, ArrayView<float> dBias, ArrayView<float> dOutput, ArrayView<float> output,
            ArrayView<float> lse, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<int> keyPadding, ArrayView<float> bias, AttentionLayout layout)
        {
            var shared = SharedMemory.GetDynamic<float>();
            int stride = layout.RowStride, headDim = layout.HeadDim;
            int gradientBase = AttentionWarps * stride, keyBase = 2 * AttentionWarps * stride;
            int valueBase = keyBase + AttentionKeyTile * stride;
            int warp = Warp.WarpIdx, lane = Warp.LaneIdx;
            int weights = valueBase + AttentionKeyTile * stride + warp * AttentionKeyTile;
            int tiles = (layout.Time + AttentionWarps - 1) / AttentionWarps;
            int head = Grid.IdxX / tiles % layout.Heads;
            bool wholeBatch = dBias.Length > 0;
            int batchFirst = wholeBatch ? 0 : Grid.IdxX / tiles / layout.Heads;
            int batchEnd = wholeBatch ? layout.Batch : batchFirst + 1;
            int query0 = (tiles - 1 - Grid.IdxX % tiles) * AttentionWarps;
            int query = query0 + warp;
            bool rowValid = query < layout.Time;
            int kvHead = head / layout.HeadsPerKvHead;
            int queryRow = warp * stride, gradientRow = gradientBase + warp * stride;
            int first = FirstVisibleKey(layout, query), end = VisibleKeyEnd(layout, query);

            for (int batch = batchFirst; batch < batchEnd; batch++)
            {
                int queryStart = (batch * layout.Time + query) * layout.QueryStride + head * headDim;
                int outputStart = (batch * layout.Time + query) * layout.Heads * headDim + head * headDim;
                Group.Barrier(); // every warp is done with the previous batch's rows
                StageRow(shared, queryRow, q, queryStart, rowValid, layout);
                StageRow(shared, gradientRow, dOutput, outputStart, rowValid, layout);
                float delta = 0;
                if (rowValid)
                    for (int d = lane; d < headDim; d += 32) // the columns this lane staged itself
                        delta += shared[gradientRow + d] * output[outputStart + d];
                delta = WarpSum(delta);
                float rowLse = rowValid ? lse[(batch * layout.Heads + head) * layout.Time + query] : 0f;
                bool seesKeys = rowValid && rowLse != float.MinValue; // a row that sees no key does not depend on q
                int keyFirst = FirstVisibleKey(layout, query0);
                int keyEnd = VisibleKeyEnd(layout, XMath.Min(layout.Time, query0 + AttentionWarps) - 1);

                var dqRow = default(LaneRow);
                for (int key0 = keyFirst - keyFirst % AttentionKeyTile; key0 < keyEnd; key0 += AttentionKeyTile)
                {
                    int keys = XMath.Min(AttentionKeyTile, layout.KeyTime - key0);
                    Group.Barrier();
                    StageRows(shared, keyBase, AttentionKeyTile, k, (batch * layout.KeyTime + key0) * layout.KeyStride + kvHead * headDim, layout.KeyStride, keys, layout);
                    StageRows(shared, valueBase, AttentionKeyTile, v, (batch * layout.KeyTime + key0) * layout.ValueStride + kvHead * headDim, layout.ValueStride, keys, layout);
                    Group.Barrier();

                    int key = key0 + lane;
                    float p = 0, dScore = 0;
                    if (seesKeys && IsVisible(keyPadding, layout, batch, first, end, key))
                    {
                        float score = layout.Scale * SharedDot(shared, queryRow, keyBase + lane * stride, headDim);
                        if (bias.Length > 0) score += bias[(head * layout.Time + query) * layout.KeyTime + key];
                        p = XMath.Exp(score - rowLse);
                    }
                    if (p != 0f)
                    {
                        dScore = p * (AttentionKeep(layout, batch, head, query, key) * SharedDot(shared, gradientRow, valueBase + lane * stride, headDim) - delta);
                        if (wholeBatch) dBias[(head * layout.Time + query) * layout.KeyTime + key] += dScore;
                    }
                    shared[weights + lane] = dScore;
                    Warp.Barrier();
                    for (int j = 0; j < AttentionKeyTile; j++)
                    {
                        float weight = shared[weights + j];
                        if (weight != 0f) dqRow = dqRow.PlusScaled(weight, shared, keyBase + j * stride + lane, layout.Columns);
                    }
                }
                if (rowValid) dqRow.AddTo(dq, queryStart, headDim, layout.Scale);
            }
        }

        // ---------------------------------------------------------------- helpers

        /// <summary>
        /// The dropout factor of probability (batch, head, query, key): 1 / (1 - rate) when kept, 0 when dropped, 1
        /// without dropout. The draw is the dropout kernel's (SplitMix64 of the seed at the element's index), so the
        /// forward and both backward kernels see the same mask.
        /// </summary>
        private static float AttentionKeep(AttentionLayout layout, int batch, int head, int query, int key)
            => layout.DropThreshold == 0 ? 1f : DropoutKeep(layout, (((long)batch * layout.Heads + head) * layout.Time + query) * layout.KeyTime + key);

        /// <summary>The dropout factor of the probability with draw index <paramref name="index"/> (dropout on).</summary>
        private static float DropoutKeep(AttentionLayout layout, long index)
            => (uint)(DropoutHash(layout.DropoutSeed, index) >> 40) >= layout.DropThreshold ? layout.KeepScale : 0f;

        /// <summary>The first key query <paramref name="query"/> may see (the window's start).</summary>
        private static int FirstVisibleKey(AttentionLayout layout, int query)
            => layout.Window > 0 ? XMath.Max(0, layout.QueryOffset + query - layout.Window + 1) : 0;

        /// <summary>One past the last key query <paramref name="query"/> may see (causal: its own position).</summary>
        private static int VisibleKeyEnd(AttentionLayout layout, int query)
            => layout.Causal != 0 ? XMath.Min(layout.KeyTime, layout.QueryOffset + query + 1) : layout.KeyTime;

        private static bool IsVisible(ArrayView<int> keyPadding, AttentionLayout layout, int batch, int first, int end, int key)
            => key >= first && key < end && (keyPadding.Length == 0 || keyPadding[batch * layout.KeyTime + key] != 0);

        /// <summary>Whether any key in [first, end) is a real token (the warp reads the padding mask together).</summary>
        private static bool WarpAnyVisibleKey(ArrayView<int> keyPadding, AttentionLayout layout, int batch, int first, int end)
        {
            if (keyPadding.Length == 0) return first < end;
            bool found = false;
            for (int key = first + Warp.LaneIdx; key < end; key += 32)
                found |= keyPadding[batch * layout.KeyTime + key] != 0;
            return WarpAny(found);
        }

        /// <summary>
        /// The group copies <paramref name="rows"/> rows to shared memory, row r from source[start + r * sourceStride]
        /// to destination + r * RowStride; rows from <paramref name="count"/> on are zeros. Warp w takes rows w, w + 8, ...
        /// </summary>
        private static void StageRows(ArrayView<float> shared, int destination, int rows, ArrayView<float> source, int start, int sourceStride, int count,
            AttentionLayout layout)
        {
            for (int r = Warp.WarpIdx; r < rows; r += AttentionWarps)
                StageRow(shared, destination + r * layout.RowStride, source, start + r * sourceStride, r < count, layout);
        }

        /// <summary>
        /// The calling warp copies one row of HeadDim floats from source[start] to shared[destination] (zeros when not
        /// <paramref name="valid"/>), zero-filling the columns up to PaddedDim; lane l takes columns l, l + 32, ..., so
        /// the warp reads contiguous global memory.
        /// </summary>
        private static void StageRow(ArrayView<float> shared, int destination, ArrayView<float> source, int start, bool valid, AttentionLayout layout)
        {
            for (int d = Warp.LaneIdx; d < layout.PaddedDim; d += 32)
                shared[destination + d] = valid && d < layout.HeadDim ? source[start + d] : 0f;
        }

        private static float SharedDot(ArrayView<float> shared, int x, int y, int length)
        {
            float sum = 0;
            for (int d = 0; d < length; d++) sum += shared[x + d] * shared[y + d];
            return sum;
        }

        private static float WarpMax(float value)
        {
            for (int mask = 16; mask > 0; mask /= 2) value = XMath.Max(value, Warp.ShuffleXor(value, mask));
            return value;
        }

        private static float WarpSum(float value)
        {
            for (int mask = 16; mask > 0; mask /= 2) value += Warp.ShuffleXor(value, mask);
            return value;
        }

        private static bool WarpAny(bool value)
        {
            int any = value ? 1 : 0;
            for (int mask = 16; mask > 0; mask /= 2) any |= Warp.ShuffleXor(any, mask);
            return any != 0;
        }
    }
}
