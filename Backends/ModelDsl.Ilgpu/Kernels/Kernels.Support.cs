using System;
using System.Collections.Generic;
using ILGPU;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // What several kernel families share: the warp-per-row launch shape and the working memory of launchers that
    // need more than one kernel (partial sums, sort orders).
    public sealed partial class Kernels
    {
        /// <summary>Threads per group of the row-wise kernels: 8 warps, one row per warp (LayerNorm, RMSNorm).</summary>
        internal const int RowGroupSize = 256;

        /// <summary>Rows one group of a warp-per-row kernel handles.</summary>
        internal const int RowsPerGroup = RowGroupSize / GroupReductions.WarpSize;

        private readonly Dictionary<string, MemoryBuffer> scratch = new();

        /// <summary>The warp reductions are written for NVIDIA's 32-lane warps (the CPU accelerator emulates them).</summary>
        private void RequireWarpOf32(string kernel)
        {
            if (Accelerator.WarpSize != GroupReductions.WarpSize)
                throw new NotSupportedException($"{kernel}: the kernels need warps of {GroupReductions.WarpSize} threads; {Accelerator.Name} has {Accelerator.WarpSize}.");
        }

        /// <summary>The launch shape of a kernel whose code assumes 32-lane warps (shuffles, lane-per-channel layouts).</summary>
        private KernelConfig WarpGroups(string kernel, int groups, int groupSize)
        {
            RequireWarpOf32(kernel);
            return new KernelConfig(groups, groupSize);
        }

        /// <summary>The launch shape of a warp-per-row kernel over <paramref name="rows"/> rows.</summary>
        private KernelConfig RowsConfig(string kernel, int rows) => WarpGroups(kernel, GroupsFor(rows, RowsPerGroup), RowGroupSize);

        /// <summary>
        /// A device buffer owned by one launcher (<paramref name="owner"/>), kept between launches and grown on demand, so a
        /// training step allocates nothing. Launches on one stream run in order, so the next launch may reuse it at once;
        /// a Kernels instance therefore launches from one thread at a time. The accelerator frees it when disposed.
        /// </summary>
        private ArrayView<T> Scratch<T>(string owner, long length) where T : unmanaged
        {
            if (scratch.TryGetValue(owner, out var existing))
            {
                var view = ((MemoryBuffer1D<T, Stride1D.Dense>)existing).View;
                if (view.Length >= length) return view.SubView(0, length);
                Accelerator.Synchronize(); // a kernel still in flight may read the old buffer
                existing.Dispose();
            }
            var buffer = Accelerator.Allocate1D<T>(Math.Max(length, 1));
            scratch[owner] = buffer;
            return buffer.View.SubView(0, length);
        }
    }
}
