using ILGPU;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// Sums across a warp and across a group, the building blocks of the row-wise kernels. Deterministic: a
    /// butterfly (xor) exchange adds the same operands in the same order in every lane, so every lane holds the
    /// bit-identical total, and group totals add the warp totals in warp order. Written for 32-lane warps
    /// (launchers check the accelerator), hand-unrolled because ILGPU 1.5.3 does not unroll loops.
    /// </summary>
    internal static class GroupReductions
    {
        public const int WarpSize = 32;

        public static float WarpSum(float value)
        {
            value += Warp.ShuffleXor(value, 16);
            value += Warp.ShuffleXor(value, 8);
            value += Warp.ShuffleXor(value, 4);
            value += Warp.ShuffleXor(value, 2);
            value += Warp.ShuffleXor(value, 1);
            return value;
        }

        /// <summary>
        /// The sum of <paramref name="value"/> over the group, in every thread. <paramref name="warpTotals"/> is shared
        /// memory with one slot per warp; every thread of the group must call this (it has barriers).
        /// </summary>
        public static float GroupSum(float value, ArrayView<float> warpTotals)
        {
            value = WarpSum(value);
            if (Warp.LaneIdx == 0) warpTotals[Warp.WarpIdx] = value;
            Group.Barrier();
            float total = 0f;
            for (int w = 0; w < Group.DimX / WarpSize; w++) total += warpTotals[w];
            Group.Barrier(); // the slots may be reused by the next reduction
            return total;
        }
    }
}
