using ILGPU;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // Element-wise arithmetic: residual additions, the gradient sums of values read twice, scaled gradients.
    public sealed partial class Kernels
    {
        /// <summary>output = a + b (all of one length).</summary>
        public void Add(ArrayView<float> output, ArrayView<float> a, ArrayView<float> b)
        {
            Check.SameLength(nameof(Add), output, (nameof(a), a), (nameof(b), b));
            Load(nameof(AddKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(AddKernel))
                ((int)output.Length, output, a, b);
        }

        /// <summary>destination += source.</summary>
        public void Accumulate(ArrayView<float> destination, ArrayView<float> source)
        {
            Check.SameLength(nameof(Accumulate), destination, (nameof(source), source));
            Load(nameof(AccumulateKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(AccumulateKernel))
                ((int)destination.Length, destination, source);
        }

        /// <summary>destination += factor * source: the backward of a scaling (T5's tied head multiplies by Hidden^-0.5).</summary>
        public void AccumulateScaled(ArrayView<float> destination, ArrayView<float> source, float factor)
        {
            Check.SameLength(nameof(AccumulateScaled), destination, (nameof(source), source));
            Load(nameof(AccumulateScaledKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(AccumulateScaledKernel))
                ((int)destination.Length, destination, source, factor);
        }

        [Kernel]
        internal static void AccumulateScaledKernel(Index1D i, ArrayView<float> destination, ArrayView<float> source, float factor) => destination[i] += factor * source[i];

        [Kernel]
        internal static void AddKernel(Index1D i, ArrayView<float> output, ArrayView<float> a, ArrayView<float> b) => output[i] = a[i] + b[i];

        [Kernel]
        internal static void AccumulateKernel(Index1D i, ArrayView<float> destination, ArrayView<float> source) => destination[i] += source[i];
    }
}
