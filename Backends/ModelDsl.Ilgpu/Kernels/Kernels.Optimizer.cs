using System;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using static ModelDsl.Ilgpu.GroupReductions;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// One AdamW step: the hyper-parameters of torch.optim.AdamW (Step counts from 1), gradient clipping by global norm as
    /// torch.nn.utils.clip_grad_norm_ (MaxGradNorm &lt;= 0 or infinite: none), and decoupled weight decay for the first
    /// DecayedCount elements of the flat parameter buffer (matrices first, then biases and norm weights without decay).
    /// </summary>
    public readonly record struct AdamWStep(float LearningRate, float Beta1, float Beta2, float Epsilon, float WeightDecay, int Step, float MaxGradNorm, long DecayedCount);

    // The optimizer over one flat parameter buffer (and its gradients and moments): the squared gradient norm, then
    // AdamW reading that norm on the device (no host round trip), plus the small element-wise helpers of a step.
    //
    // Parallelisation: AdamW, Scale and Fill are element-wise (auto-grouped, coalesced). The sum of squares is two-pass:
    // groups of 256 threads each reduce a contiguous chunk of 4096 elements (16 coalesced loads per thread, then a warp
    // and group tree) into a partial sum in a scratch buffer of this Kernels instance, then one group adds the partials
    // in order. The chunk size, not the device, fixes the grouping, so the result is the same on every run and device
    // (GPT-2 small: 124M gradients, 30k partials).
    public sealed partial class Kernels
    {
        /// <summary>Elements one group of the sum of squares reduces (16 per thread).</summary>
        internal const int SumOfSquaresChunk = 16 * SumOfSquaresGroupSize;

        internal const int SumOfSquaresGroupSize = 256;

        /// <summary>result[0] = the sum of values^2, reduced in a fixed order (deterministic).</summary>
        public void SumOfSquares(ArrayView<float> result, ArrayView<float> values)
        {
            const string kernel = nameof(SumOfSquares);
            Check.Length(kernel, nameof(result), result, 1);
            Check.Positive(kernel, nameof(values) + ".Length", values.Length);
            int chunks = checked((int)((values.Length + SumOfSquaresChunk - 1) / SumOfSquaresChunk));
            var partials = Scratch<float>(nameof(SumOfSquares), chunks);
            Load(nameof(SumOfSquaresPartialsKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>>(SumOfSquaresPartialsKernel))
                (WarpGroups(kernel, chunks, SumOfSquaresGroupSize), partials, values);
            Load(nameof(SumOfSquaresTotalKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>>(SumOfSquaresTotalKernel))
                (WarpGroups(kernel, 1, SumOfSquaresGroupSize), result, partials);
        }

        /// <summary>
        /// One AdamW step over the flat buffers, exactly as torch: the gradients scaled by min(1, MaxGradNorm / (norm + 1e-6)),
        /// norm = sqrt(sumOfSquares[0]) (from <see cref="SumOfSquares"/>, read on the device); p *= 1 - lr wd for the
        /// first DecayedCount elements; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
        /// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). The gradients are left unchanged.
        /// </summary>
        public void AdamW(ArrayView<float> parameters, ArrayView<float> gradients, ArrayView<float> m, ArrayView<float> v, ArrayView<float> sumOfSquares, AdamWStep step)
        {
            const string kernel = nameof(AdamW);
            Check.SameLength(kernel, parameters, (nameof(gradients), gradients), (nameof(m), m), (nameof(v), v));
            Check.Length(kernel, nameof(sumOfSquares), sumOfSquares, 1);
            Check.Positive(kernel, "step.Step", step.Step);
            Check.NonNegative(kernel, "step.LearningRate", step.LearningRate);
            Check.NonNegative(kernel, "step.WeightDecay", step.WeightDecay);
            Check.NonNegative(kernel, "step.Epsilon", step.Epsilon);
            if (!(step.Beta1 >= 0f && step.Beta1 < 1f)) throw new ArgumentOutOfRangeException(nameof(step), step.Beta1, $"{kernel}: step.Beta1 must be in [0, 1).");
            if (!(step.Beta2 >= 0f && step.Beta2 < 1f)) throw new ArgumentOutOfRangeException(nameof(step), step.Beta2, $"{kernel}: step.Beta2 must be in [0, 1).");
            if (step.DecayedCount < 0 || step.DecayedCount > parameters.Length)
                throw new ArgumentOutOfRangeException(nameof(step), step.DecayedCount, $"{kernel}: step.DecayedCount must be in [0, {parameters.Length}].");
            Load(nameof(AdamWKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, AdamWCoefficients>(AdamWKernel))
                (Check.IndexRange(kernel, parameters), parameters, gradients, m, v, sumOfSquares, AdamWCoefficients.Of(step));
        }

        /// <summary>values *= factor.</summary>
        public void Scale(ArrayView<float> values, float factor)
            => Load(nameof(ScaleKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(ScaleKernel))
                (Check.IndexRange(nameof(Scale), values), values, factor);

        /// <summary>values = value everywhere.</summary>
        public void Fill(ArrayView<float> values, float value)
            => Load(nameof(FillKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(FillKernel))
                (Check.IndexRange(nameof(Fill), values), values, value);

        /// <summary>An <see cref="AdamWStep"/> as the kernel uses it: powers and products computed once, in double, on the host (as torch does in Python floats).</summary>
        internal readonly struct AdamWCoefficients
        {
            public readonly float Beta1, OneMinusBeta1, Beta2, OneMinusBeta2, Epsilon, DecayFactor, StepSize, BiasCorrection2Sqrt, MaxGradNorm;
            public readonly long DecayedCount;

            private AdamWCoefficients(AdamWStep s)
            {
                Beta1 = s.Beta1;
                OneMinusBeta1 = (float)(1 - (double)s.Beta1);
                Beta2 = s.Beta2;
                OneMinusBeta2 = (float)(1 - (double)s.Beta2);
                Epsilon = s.Epsilon;
                DecayFactor = (float)(1 - (double)s.LearningRate * s.WeightDecay);
                StepSize = (float)(s.LearningRate / (1 - Math.Pow(s.Beta1, s.Step)));
                BiasCorrection2Sqrt = (float)Math.Sqrt(1 - Math.Pow(s.Beta2, s.Step));
                MaxGradNorm = s.MaxGradNorm > 0f && !float.IsPositiveInfinity(s.MaxGradNorm) ? s.MaxGradNorm : 0f; // 0: no clipping
                DecayedCount = s.DecayedCount;
            }

            public static AdamWCoefficients Of(AdamWStep step) => new(step);
        }

        /// <summary>A group's chunk of 4096 values: 16 coalesced loads per thread, then the group sum, one partial per group.</summary>
        [Kernel(SumOfSquaresGroupSize)]
        internal static void SumOfSquaresPartialsKernel(ArrayView<float> partials, ArrayView<float> values)
        {
            var warpTotals = SharedMemory.Allocate<float>(SumOfSquaresGroupSize / WarpSize);
            long start = (long)Grid.IdxX * SumOfSquaresChunk;
            long end = XMath.Min(start + SumOfSquaresChunk, values.Length);
            float sum = 0f;
            for (long i = start + Group.IdxX; i < end; i += SumOfSquaresGroupSize)
            {
                float x = values[i];
                sum += x * x;
            }
            float total = GroupSum(sum, warpTotals);
            if (Group.IdxX == 0) partials[Grid.IdxX] = total;
        }

        /// <summary>One group adds the partials (thread k: partials k, k + 256, ...; then the group tree).</summary>
        [Kernel(SumOfSquaresGroupSize)]
        internal static void SumOfSquaresTotalKernel(ArrayView<float> result, ArrayView<float> partials)
        {
            var warpTotals = SharedMemory.Allocate<float>(SumOfSquaresGroupSize / WarpSize);
            float sum = 0f;
            for (int i = Group.IdxX; i < partials.Length; i += SumOfSquaresGroupSize) sum += partials[i];
            float total = GroupSum(sum, warpTotals);
            if (Group.IdxX == 0) result[0] = total;
        }

        /// <summary>The AdamW update of one element, in the order of torch's single-tensor AdamW (see <see cref="AdamW"/>).</summary>
        [Kernel]
        internal static void AdamWKernel(Index1D i, ArrayView<float> parameters, ArrayView<float> gradients, ArrayView<float> m, ArrayView<float> v,
            ArrayView<float> sumOfSquares, AdamWCoefficients k)
        {
            float clip = k.MaxGradNorm > 0f ? XMath.Min(1f, k.MaxGradNorm / (XMath.Sqrt(sumOfSquares[0]) + 1e-6f)) : 1f;
            float g = gradients[i] * clip;
            float p = parameters[i];
            if (i < k.DecayedCount) p *= k.DecayFactor;
            float mi = m[i] * k.Beta1 + k.OneMinusBeta1 * g;
            float vi = v[i] * k.Beta2 + k.OneMinusBeta2 * g * g;
            m[i] = mi;
            v[i] = vi;
            parameters[i] = p - k.StepSize * (mi / (XMath.Sqrt(vi) / k.BiasCorrection2Sqrt + k.Epsilon));
        }

        [Kernel]
        internal static void ScaleKernel(Index1D i, ArrayView<float> values, float factor) => values[i] *= factor;

        [Kernel]
        internal static void FillKernel(Index1D i, ArrayView<float> values, float value) => values[i] = value;
    }
}
