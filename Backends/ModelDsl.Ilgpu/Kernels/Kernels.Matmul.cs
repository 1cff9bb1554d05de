using System;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // Dense matrix products (every linear layer, forward and backward) and the bias gradient.
    public sealed partial class Kernels
    {
        // One group computes a 64 x 64 tile of c; its 256 threads form a 16 x 16 grid, each thread a 4 x 4 micro-tile
        // (rows ty + 16 r, columns tx + 16 s: neighbouring threads own neighbouring columns, so the stores of a warp are
        // contiguous and its shared-memory reads are broadcasts or consecutive words). The reduction runs over K-tiles
        // of 16: the group stages a 16 x 64 slice of op(a) and of op(b) in shared memory, depth-major and padded to 65
        // words a row (2 x 16 x 65 x 4 B = 8.3 KB a group), then each thread does 16 x 16 multiply-adds from 8 shared
        // reads a step. Global traffic: 2 x 64 x 16 floats for 2 x 64 x 64 x 16 flops, 16 flop/B, so the product is
        // compute-bound on an H100 (~67 TFLOP/s FP32 SIMT, ~3.3 TB/s HBM) once the shape fills the GPU.
        private const int MatmulTile = 64;
        private const int MatmulDepth = 16;
        private const int MatmulTileStride = MatmulTile + 1; // odd: a transposed store of 16 threads hits 16 banks
        private const int MatmulGroupSize = 256;

        // Bias gradient: a group of 8 warps owns 32 columns; warp w sums rows w, w + 8, ... (a warp reads 32
        // consecutive floats of one row), and the 8 partial sums are added in a fixed order: deterministic.
        private const int BiasBackwardColumns = 32;
        private const int BiasBackwardWarps = 8;

        /// <summary>
        /// c[m, n] = (accumulate ? c : 0) + op(a) op(b) + bias[n] (bias optional: pass <c>default</c>). op(a) is a
        /// stored [m, k], or with <paramref name="transposeA"/> a stored [k, m] read transposed (no copy); op(b) is a
        /// stored [k, n], or with <paramref name="transposeB"/> a stored [n, k]. c must not overlap a or b. A linear
        /// layer y = x W + b over rows x [N, in] uses it six ways:
        /// <list type="table">
        /// <listheader><term>product</term><description>call (m, n, k; transposeA, transposeB, accumulate)</description></listheader>
        /// <item><term>forward, GPT-2 Conv1D W [in, out]</term><description>y = x W + b: (N, out, in; false, false, false)</description></item>
        /// <item><term>forward, nn.Linear W [out, in]</term><description>y = x W^T + b: (N, out, in; false, true, false)</description></item>
        /// <item><term>input gradient, Conv1D</term><description>dx += dy W^T: (N, in, out; false, true, true)</description></item>
        /// <item><term>input gradient, Linear</term><description>dx += dy W: (N, in, out; false, false, true)</description></item>
        /// <item><term>weight gradient, Conv1D</term><description>dW [in, out] += x^T dy: (in, out, N; true, false, true)</description></item>
        /// <item><term>weight gradient, Linear</term><description>dW [out, in] += dy^T x: (out, in, N; true, false, true)</description></item>
        /// </list>
        /// The bias gradient is <see cref="BiasBackward"/>. A residual connection is the forward with accumulate=true.
        /// </summary>
        public void Matmul(ArrayView<float> c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> bias,
            int m, int n, int k, bool transposeA, bool transposeB, bool accumulate)
        {
            int groups = CheckMatmul(c, a, b, bias, m, n, k);
            Load(nameof(MatmulKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int>(MatmulKernel))
                (new KernelConfig(groups, MatmulGroupSize), c, a, b, bias, m, n, k, transposeA ? 1 : 0, transposeB ? 1 : 0, accumulate ? 1 : 0);
        }

        /// <summary>
        /// A linear layer with its activation as the epilogue: c[m, n] = a op(b) + bias[n], the pre-activation (kept for the
        /// backward pass), and activated = f(c), written by the same threads from the same registers. Unfused, an activation
        /// kernel would read c back: this saves one pass over [m, n] and a launch. op(b) as in <see cref="Matmul"/>. A kernel
        /// of its own over the same tiles: the epilogue's code in the plain product cost it registers (42 instead of 40 on
        /// sm_90, 5 groups per SM instead of 6).
        /// </summary>
        public void MatmulActivation(ArrayView<float> c, ArrayView<float> activated, KernelActivation function, ArrayView<float> a, ArrayView<float> b,
            ArrayView<float> bias, int m, int n, int k, bool transposeB)
        {
            const string kernel = nameof(MatmulActivation);
            if (!Enum.IsDefined(function)) throw new ArgumentOutOfRangeException(nameof(function), function, $"{kernel}: unknown activation.");
            int groups = CheckMatmul(c, a, b, bias, m, n, k);
            Check.Length(kernel, nameof(activated), activated, Check.Indexable(kernel, nameof(activated), (long)m * n));
            Load(nameof(MatmulActivationKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(MatmulActivationKernel))
                (new KernelConfig(groups, MatmulGroupSize), c, activated, (int)function, a, b, bias, m, n, k, transposeB ? 1 : 0);
        }

        /// <summary>Checks a product's sizes and returns its number of groups (one per 64 x 64 tile of c).</summary>
        private static int CheckMatmul(ArrayView<float> c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> bias, int m, int n, int k)
        {
            Check.Positive(nameof(Matmul), nameof(m), m);
            Check.Positive(nameof(Matmul), nameof(n), n);
            Check.Positive(nameof(Matmul), nameof(k), k);
            Check.Length(nameof(Matmul), nameof(c), c, Check.Indexable(nameof(Matmul), nameof(c), (long)m * n));
            Check.Length(nameof(Matmul), nameof(a), a, Check.Indexable(nameof(Matmul), nameof(a), (long)m * k));
            Check.Length(nameof(Matmul), nameof(b), b, Check.Indexable(nameof(Matmul), nameof(b), (long)k * n));
            if (bias.Length > 0) Check.Length(nameof(Matmul), nameof(bias), bias, n);
            return GroupsFor(m, MatmulTile) * GroupsFor(n, MatmulTile);
        }

        /// <summary>dBias[column] += the sum over rows of dOutput[row, column] (dOutput [rows, columns]).</summary>
        public void BiasBackward(ArrayView<float> dBias, ArrayView<float> dOutput, int rows, int columns)
        {
            Check.Positive(nameof(BiasBackward), nameof(rows), rows);
            Check.Positive(nameof(BiasBackward), nameof(columns), columns);
            Check.Length(nameof(BiasBackward), nameof(dBias), dBias, columns);
            Check.Length(nameof(BiasBackward), nameof(dOutput), dOutput, Check.Indexable(nameof(BiasBackward), nameof(dOutput), (long)rows * columns));
            Load(nameof(BiasBackwardKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int>(BiasBackwardKernel))
                (new KernelConfig(GroupsFor(columns, BiasBackwardColumns), BiasBackwardColumns * BiasBackwardWarps), dBias, dOutput, rows, columns);
        }

        [Kernel(MatmulGroupSize)]
        internal static void MatmulKernel(ArrayView<float> c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> bias,
            int m, int n, int k, int transposeA, int transposeB, int accumulate)
            => MatmulTiles(c, default, NoActivation, a, b, bias, m, n, k, transposeA, transposeB, accumulate);

        /// <summary>The product with an activation epilogue (a linear layer's forward: no transposed a, no accumulation).</summary>
        [Kernel(MatmulGroupSize)]
        internal static void MatmulActivationKernel(ArrayView<float> c, ArrayView<float> activated, int function, ArrayView<float> a, ArrayView<float> b,
            ArrayView<float> bias, int m, int n, int k, int transposeB)
            => MatmulTiles(c, activated, function, a, b, bias, m, n, k, 0, transposeB, 0);

        /// <summary>Marks "no epilogue activation": a constant, so the plain kernel compiles without the epilogue's code.</summary>
        private const int NoActivation = -1;

        /// <summary>The tiled product both kernels run, inlined into each (the plain one with constant no-epilogue arguments).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void MatmulTiles(ArrayView<float> c, ArrayView<float> activated, int function, ArrayView<float> a, ArrayView<float> b, ArrayView<float> bias,
            int m, int n, int k, int transposeA, int transposeB, int accumulate)
        {
            var aTile = SharedMemory.Allocate<float>(MatmulDepth * MatmulTileStride); // [depth][row of the tile]
            var bTile = SharedMemory.Allocate<float>(MatmulDepth * MatmulTileStride); // [depth][column of the tile]
            int thread = Group.IdxX;
            int tx = thread % 16, ty = thread / 16;
            int tilesAcross = (n + MatmulTile - 1) / MatmulTile;
            int row0 = Grid.IdxX / tilesAcross * MatmulTile;
            int column0 = Grid.IdxX % tilesAcross * MatmulTile;

            float c00 = 0, c01 = 0, c02 = 0, c03 = 0;
            float c10 = 0, c11 = 0, c12 = 0, c13 = 0;
            float c20 = 0, c21 = 0, c22 = 0, c23 = 0;
            float c30 = 0, c31 = 0, c32 = 0, c33 = 0;

            for (int depth0 = 0; depth0 < k; depth0 += MatmulDepth)
            {
                // Each load walks the operand along its contiguous dimension: 16 threads along k (a [m, k], b [n, k])
                // or 64 along m or n (a [k, m], b [k, n]); out-of-range elements are zeros, so the loop below needs no test.
                if (transposeA == 0)
                {
                    int depth = thread % MatmulDepth, kk = depth0 + depth;
                    for (int r = thread / MatmulDepth; r < MatmulTile; r += MatmulGroupSize / MatmulDepth)
                        aTile[depth * MatmulTileStride + r] = row0 + r < m && kk < k ? a[(row0 + r) * k + kk] : 0f;
                }
                else
                {
                    int r = thread % MatmulTile;
                    for (int depth = thread / MatmulTile; depth < MatmulDepth; depth += MatmulGroupSize / MatmulTile)
                        aTile[depth * MatmulTileStride + r] = row0 + r < m && depth0 + depth < k ? a[(depth0 + depth) * m + row0 + r] : 0f;
                }
                if (transposeB == 0)
                {
                    int s = thread % MatmulTile;
                    for (int depth = thread / MatmulTile; depth < MatmulDepth; depth += MatmulGroupSize / MatmulTile)
                        bTile[depth * MatmulTileStride + s] = column0 + s < n && depth0 + depth < k ? b[(depth0 + depth) * n + column0 + s] : 0f;
                }
                else
                {
                    int depth = thread % MatmulDepth, kk = depth0 + depth;
                    for (int s = thread / MatmulDepth; s < MatmulTile; s += MatmulGroupSize / MatmulDepth)
                        bTile[depth * MatmulTileStride + s] = column0 + s < n && kk < k ? b[(column0 + s) * k + kk] : 0f;
                }
                Group.Barrier();

                for (int depth = 0; depth < MatmulDepth; depth++)
                {
                    int ai = depth * MatmulTileStride + ty, bi = depth * MatmulTileStride + tx;
                    float a0 = aTile[ai], a1 = aTile[ai + 16], a2 = aTile[ai + 32], a3 = aTile[ai + 48];
                    float b0 = bTile[bi], b1 = bTile[bi + 16], b2 = bTile[bi + 32], b3 = bTile[bi + 48];
                    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
                }
                Group.Barrier();
            }

            int row = row0 + ty, column = column0 + tx;
            StoreMatmul(c, activated, function, bias, m, n, accumulate, row, column, c00, c01, c02, c03);
            StoreMatmul(c, activated, function, bias, m, n, accumulate, row + 16, column, c10, c11, c12, c13);
            StoreMatmul(c, activated, function, bias, m, n, accumulate, row + 32, column, c20, c21, c22, c23);
            StoreMatmul(c, activated, function, bias, m, n, accumulate, row + 48, column, c30, c31, c32, c33);
        }

        /// <summary>Writes one row of a thread's micro-tile: columns column, column + 16, + 32, + 48.</summary>
        private static void StoreMatmul(ArrayView<float> c, ArrayView<float> activated, int function, ArrayView<float> bias, int m, int n, int accumulate,
            int row, int column, float v0, float v1, float v2, float v3)
        {
            if (row >= m) return;
            StoreMatmulElement(c, activated, function, bias, n, accumulate, row, column, v0);
            StoreMatmulElement(c, activated, function, bias, n, accumulate, row, column + 16, v1);
            StoreMatmulElement(c, activated, function, bias, n, accumulate, row, column + 32, v2);
            StoreMatmulElement(c, activated, function, bias, n, accumulate, row, column + 48, v3);
        }

        /// <summary>The epilogue: bias, accumulation, and (when <paramref name="activated"/> is given) the activation of the result.</summary>
        private static void StoreMatmulElement(ArrayView<float> c, ArrayView<float> activated, int function, ArrayView<float> bias, int n, int accumulate,
            int row, int column, float value)
        {
            if (column >= n) return;
            int index = row * n + column;
            if (bias.Length > 0) value += bias[column];
            if (accumulate != 0) value += c[index];
            c[index] = value;
            if (function != NoActivation) activated[index] = ActivationValue(function, value);
        }

        [Kernel(BiasBackwardColumns * BiasBackwardWarps)]
        internal static void BiasBackwardKernel(ArrayView<float> dBias, ArrayView<float> dOutput, int rows, int columns)
        {
            var partial = SharedMemory.Allocate<float>(BiasBackwardColumns * BiasBackwardWarps);
            int warp = Warp.WarpIdx, lane = Warp.LaneIdx;
            int column = Grid.IdxX * BiasBackwardColumns + lane;
            float sum = 0;
            if (column < columns)
                for (int row = warp; row < rows; row += BiasBackwardWarps)
                    sum += dOutput[row * columns + column];
            partial[warp * BiasBackwardColumns + lane] = sum;
            Group.Barrier();
            if (warp == 0 && column < columns)
            {
                float total = 0;
                for (int w = 0; w < BiasBackwardWarps; w++)
                    total += partial[w * BiasBackwardColumns + lane];
                dBias[column] += total;
            }
        }
    }
}
