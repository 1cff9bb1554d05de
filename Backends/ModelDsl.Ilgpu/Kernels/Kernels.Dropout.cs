using System;
using ILGPU;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // Inverted dropout: kept elements scaled by 1 / (1 - rate) in training, so inference is the identity.
    //
    // Random numbers come from a counter-based generator: element i's draw is SplitMix64's output for counter i + 1 of the
    // seed, mix(seed + (i + 1) * golden gamma), a pure function of (seed, i). The mask is therefore the same whatever the
    // launch geometry or device, and a step can be replayed from its seed. An element is kept when the top 24 bits of its
    // draw are >= rate * 2^24 (the rate rounded to a multiple of 2^-24). The masks differ from libtorch's (Philox),
    // which nothing here can reproduce; the tests check the statistics instead. Element-wise: auto-grouped, coalesced;
    // the mask is one byte per element.
    public sealed partial class Kernels
    {
        /// <summary>output = input * mask / (1 - rate), mask[i] = 1 with probability 1 - rate (0 otherwise), drawn from (seed, i).</summary>
        public void DropoutForward(ArrayView<float> output, ArrayView<byte> mask, ArrayView<float> input, float rate, ulong seed)
        {
            const string kernel = nameof(DropoutForward);
            CheckRate(kernel, rate);
            Check.SameLength(kernel, output, (nameof(input), input));
            Check.Length(kernel, nameof(mask), mask, output.Length);
            Load(nameof(DropoutForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<byte>, ArrayView<float>, uint, float, ulong>(DropoutForwardKernel))
                (Check.IndexRange(kernel, output), output, mask, input, DropThreshold(rate), KeptScale(rate), seed);
        }

        /// <summary>dInput += dOutput * mask / (1 - rate), with the mask of the forward pass.</summary>
        public void DropoutBackward(ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<byte> mask, float rate)
        {
            const string kernel = nameof(DropoutBackward);
            CheckRate(kernel, rate);
            Check.SameLength(kernel, dInput, (nameof(dOutput), dOutput));
            Check.Length(kernel, nameof(mask), mask, dInput.Length);
            Load(nameof(DropoutBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<byte>, float>(DropoutBackwardKernel))
                (Check.IndexRange(kernel, dInput), dInput, dOutput, mask, KeptScale(rate));
        }

        private static void CheckRate(string kernel, float rate)
        {
            if (!(rate >= 0f && rate <= 1f)) throw new ArgumentOutOfRangeException(nameof(rate), rate, $"{kernel}: rate must be in [0, 1].");
        }

        /// <summary>Draws (24-bit) below this are dropped: rate * 2^24, rounded.</summary>
        internal static uint DropThreshold(float rate) => (uint)Math.Round(rate * (double)(1 << 24));

        /// <summary>1 / (1 - rate); 0 when everything is dropped.</summary>
        private static float KeptScale(float rate) => rate < 1f ? (float)(1.0 / (1.0 - rate)) : 0f;

        /// <summary>SplitMix64 (Steele, Lea, Flood 2014; Vigna's reference constants) at counter index + 1: a pure function of (seed, index).</summary>
        internal static ulong DropoutHash(ulong seed, long index)
        {
            ulong z = seed + (ulong)(index + 1) * 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        [Kernel]
        internal static void DropoutForwardKernel(Index1D i, ArrayView<float> output, ArrayView<byte> mask, ArrayView<float> input, uint threshold, float scale, ulong seed)
        {
            bool kept = (uint)(DropoutHash(seed, i) >> 40) >= threshold;
            mask[i] = kept ? (byte)1 : (byte)0;
            output[i] = kept ? input[i] * scale : 0f;
        }

        /// <summary>y = x m s, so dx = dy m s.</summary>
        [Kernel]
        internal static void DropoutBackwardKernel(Index1D i, ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<byte> mask, float scale)
        {
            if (mask[i] != 0) dInput[i] += dOutput[i] * scale;
        }
    }
}
