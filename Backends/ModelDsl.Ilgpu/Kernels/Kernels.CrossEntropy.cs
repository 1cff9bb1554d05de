using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using static ModelDsl.Ilgpu.GroupReductions;

namespace ModelDsl.Ilgpu
{
    // Softmax cross-entropy over the vocabulary, mean over the rows whose target is not ignored (-100), as
    // torch.nn.functional.cross_entropy; its backward never materialises the probabilities.
    //
    // Parallelisation: one group of 256 threads per row (a GPT-2 row is 50257 logits: ~200 per thread, coalesced).
    // Each thread keeps an online (max, sum of exp(x - max)) over its strided logits (one pass, one exp per logit),
    // the pairs merge across the warp by shuffles and across the 8 warps through shared memory: lse = max + log(sum).
    // The mean over rows is a second kernel, one group adding the rows' losses in a fixed order (deterministic).
    // The backward is also a group per row: every thread recomputes softmax = exp(x - lse) for its logits.
    public sealed partial class Kernels
    {
        /// <summary>The target that marks a row the loss ignores (torch's ignore_index default).</summary>
        public const int IgnoreIndex = -100;

        /// <summary>Threads per row of the cross-entropy kernels (and of the loss mean).</summary>
        internal const int CrossEntropyGroupSize = 256;

        /// <summary>
        /// lse[r] = logsumexp(logits[r, :]) (saved for the backward pass) and loss[0] = the mean over rows whose target is
        /// not <see cref="IgnoreIndex"/> of lse[r] - logits[r, target[r]]. Every row ignored: NaN, as torch's mean
        /// reduction (0 / 0). A target outside [0, classes) that is not ignored gives NaN (torch throws; a kernel cannot):
        /// the host should check targets as it checks ids. Counts are exact up to 2^24 rows.
        /// </summary>
        public void CrossEntropyForward(ArrayView<float> loss, ArrayView<float> lse, ArrayView<float> logits, ArrayView<int> targets, int rows, int classes)
        {
            const string kernel = nameof(CrossEntropyForward);
            CheckCrossEntropy(kernel, logits, lse, targets, rows, classes);
            Check.Length(kernel, nameof(loss), loss, 1);
            var rowLosses = Scratch<float>(nameof(CrossEntropyForward), rows);
            Load(nameof(CrossEntropyRowKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int>(CrossEntropyRowKernel))
                (WarpGroups(kernel, rows, CrossEntropyGroupSize), rowLosses, lse, logits, targets, classes);
            Load(nameof(CrossEntropyMeanKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, int>(CrossEntropyMeanKernel))
                (WarpGroups(kernel, 1, CrossEntropyGroupSize), loss, rowLosses, targets, rows);
        }

        /// <summary>
        /// dLogits[r, c] += scale * (softmax(logits[r, :])[c] - [c == target[r]]) for rows not ignored (ignored rows are left
        /// unchanged). For the mean loss the caller passes scale = dLoss / (number of rows not ignored).
        /// </summary>
        public void CrossEntropyBackward(ArrayView<float> dLogits, ArrayView<float> logits, ArrayView<float> lse, ArrayView<int> targets, int rows, int classes, float scale)
        {
            const string kernel = nameof(CrossEntropyBackward);
            CheckCrossEntropy(kernel, logits, lse, targets, rows, classes);
            Check.Length(kernel, nameof(dLogits), dLogits, (long)rows * classes);
            Load(nameof(CrossEntropyBackwardKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, float>(CrossEntropyBackwardKernel))
                (new KernelConfig(rows, CrossEntropyGroupSize), dLogits, logits, lse, targets, classes, scale);
        }

        private static void CheckCrossEntropy(string kernel, ArrayView<float> logits, ArrayView<float> lse, ArrayView<int> targets, int rows, int classes)
        {
            Check.Positive(kernel, nameof(rows), rows);
            Check.Positive(kernel, nameof(classes), classes);
            Check.Length(kernel, nameof(logits), logits, (long)rows * classes);
            Check.Length(kernel, nameof(lse), lse, rows);
            Check.Length(kernel, nameof(targets), targets, rows);
        }

        /// <summary>One group per row: lse by an online max and sum, then the row's loss (0 when ignored).</summary>
        [Kernel(CrossEntropyGroupSize)]
        internal static void CrossEntropyRowKernel(ArrayView<float> rowLosses, ArrayView<float> lse, ArrayView<float> logits, ArrayView<int> targets, int classes)
        {
            var warpMax = SharedMemory.Allocate<float>(CrossEntropyGroupSize / WarpSize);
            var warpSum = SharedMemory.Allocate<float>(CrossEntropyGroupSize / WarpSize);
            int row = Grid.IdxX;
            long start = (long)row * classes;
            float max = float.NegativeInfinity, sum = 0f;
            for (int c = Group.IdxX; c < classes; c += CrossEntropyGroupSize)
            {
                float x = logits[start + c];
                if (x > max)
                {
                    sum = sum * XMath.Exp(max - x) + 1f;
                    max = x;
                }
                else if (x != float.NegativeInfinity) // a masked logit adds nothing (and -inf - -inf would be NaN); NaN propagates
                {
                    sum += XMath.Exp(x - max);
                }
            }
            MergeAcrossWarp(ref max, ref sum, 16);
            MergeAcrossWarp(ref max, ref sum, 8);
            MergeAcrossWarp(ref max, ref sum, 4);
            MergeAcrossWarp(ref max, ref sum, 2);
            MergeAcrossWarp(ref max, ref sum, 1);
            if (Warp.LaneIdx == 0)
            {
                warpMax[Warp.WarpIdx] = max;
                warpSum[Warp.WarpIdx] = sum;
            }
            Group.Barrier();
            if (Group.IdxX == 0)
            {
                float rowMax = warpMax[0], rowSum = warpSum[0];
                for (int w = 1; w < CrossEntropyGroupSize / WarpSize; w++)
                {
                    float otherMax = warpMax[w];
                    float merged = XMath.Max(rowMax, otherMax);
                    rowSum = Rescaled(rowSum, rowMax, merged) + Rescaled(warpSum[w], otherMax, merged);
                    rowMax = merged;
                }
                float logSumExp = rowMax + XMath.Log(rowSum);
                lse[row] = logSumExp;
                int target = targets[row];
                rowLosses[row] = target == IgnoreIndex ? 0f
                    : target >= 0 && target < classes ? logSumExp - logits[start + target]
                    : float.NaN;
            }
        }

        /// <summary>(max, sum) of this lane merged with the lane <paramref name="mask"/> away: the same operands in both lanes.</summary>
        private static void MergeAcrossWarp(ref float max, ref float sum, int mask)
        {
            float otherMax = Warp.ShuffleXor(max, mask);
            float otherSum = Warp.ShuffleXor(sum, mask);
            float merged = XMath.Max(max, otherMax);
            sum = Rescaled(sum, max, merged) + Rescaled(otherSum, otherMax, merged);
            max = merged;
        }

        /// <summary>sum * exp(max - newMax), exact when the max is unchanged (also for -inf, where the difference is NaN).</summary>
        private static float Rescaled(float sum, float max, float newMax) => max == newMax ? sum : sum * XMath.Exp(max - newMax);

        /// <summary>One group: the rows' losses and the count of rows not ignored, each thread over rows tid, tid + 256, ...</summary>
        [Kernel(CrossEntropyGroupSize)]
        internal static void CrossEntropyMeanKernel(ArrayView<float> loss, ArrayView<float> rowLosses, ArrayView<int> targets, int rows)
        {
            var warpTotals = SharedMemory.Allocate<float>(CrossEntropyGroupSize / WarpSize);
            float sum = 0f, count = 0f;
            for (int r = Group.IdxX; r < rows; r += CrossEntropyGroupSize)
            {
                sum += rowLosses[r];
                if (targets[r] != IgnoreIndex) count += 1f;
            }
            float total = GroupSum(sum, warpTotals);
            float counted = GroupSum(count, warpTotals);
            if (Group.IdxX == 0) loss[0] = total / counted; // 0 / 0 = NaN when every row is ignored, as torch
        }

        /// <summary>
        /// L_r = lse_r - x_r,t, so dL_r / dx_r,c = exp(x_r,c - lse_r) - [c == t] = softmax_c - onehot_c; the mean over the N
        /// counted rows contributes 1 / N, folded into scale with the upstream gradient.
        /// </summary>
        [Kernel(CrossEntropyGroupSize)]
        internal static void CrossEntropyBackwardKernel(ArrayView<float> dLogits, ArrayView<float> logits, ArrayView<float> lse, ArrayView<int> targets, int classes, float scale)
        {
            int row = Grid.IdxX;
            int target = targets[row];
            if (target == IgnoreIndex) return; // the whole group: no barrier follows
            long start = (long)row * classes;
            float logSumExp = lse[row];
            bool valid = target >= 0 && target < classes;
            for (int c = Group.IdxX; c < classes; c += CrossEntropyGroupSize)
            {
                float gradient = XMath.Exp(logits[start + c] - logSumExp) - (c == target ? 1f : 0f);
                dLogits[start + c] += valid ? scale * gradient : float.NaN;
            }
        }
    }
}
