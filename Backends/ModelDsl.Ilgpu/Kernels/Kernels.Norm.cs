using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using static ModelDsl.Ilgpu.GroupReductions;

namespace ModelDsl.Ilgpu
{
    // LayerNorm (GPT-2, BERT, ViT) and RMSNorm (T5, Llama) over the last dimension, forward and backward.
    //
    // Parallelisation: one warp per row, 8 rows per group of 256 threads. A row (768 floats for GPT-2 small) is a few
    // KB, so each lane strides over it with coalesced loads, the row stays in L1 between the passes, and the row
    // statistics need only warp shuffles (no shared memory, no barriers). The parameter gradients reduce over rows:
    // groups of 8 warps x 32 channels walk a chunk of NormChunkRows rows (lanes on consecutive channels: coalesced),
    // write one partial sum per chunk and channel, and a second kernel adds the chunks in order (deterministic, no
    // atomics; for 8192 x 768 that is 128 chunks x 24 channel blocks = 3072 groups, enough to fill an H100).
    public sealed partial class Kernels
    {
        /// <summary>Rows one group of the parameter-gradient kernel sums (8 per warp).</summary>
        internal const int NormChunkRows = 64;

        /// <summary>
        /// output = (input - mean) * rstd * weight + bias over rows of <paramref name="channels"/>, as torch.nn.LayerNorm
        /// (biased variance); saves mean[rows] and rstd[rows] = 1 / sqrt(var + epsilon) for the backward pass.
        /// <paramref name="bias"/> is optional (default).
        /// </summary>
        public void LayerNormForward(ArrayView<float> output, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> input,
            ArrayView<float> weight, ArrayView<float> bias, int rows, int channels, float epsilon)
        {
            const string kernel = nameof(LayerNormForward);
            CheckRows(kernel, rows, channels, (nameof(output), output), (nameof(input), input));
            Check.Length(kernel, nameof(mean), mean, rows);
            Check.Length(kernel, nameof(rstd), rstd, rows);
            Check.Length(kernel, nameof(weight), weight, channels);
            if (bias.Length > 0) Check.Length(kernel, nameof(bias), bias, channels);
            Check.NonNegative(kernel, nameof(epsilon), epsilon);
            Load(nameof(LayerNormForwardKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, int, int, float>(LayerNormForwardKernel))
                (RowsConfig(kernel, rows), output, mean, rstd, input, weight, bias, rows, channels, epsilon);
        }

        /// <summary>
        /// The gradients of <see cref="LayerNormForward"/>, ADDED to <paramref name="dInput"/> [rows, channels],
        /// <paramref name="dWeight"/> [channels] and <paramref name="dBias"/> [channels] (optional: default).
        /// </summary>
        public void LayerNormBackward(ArrayView<float> dInput, ArrayView<float> dWeight, ArrayView<float> dBias, ArrayView<float> dOutput,
            ArrayView<float> input, ArrayView<float> weight, ArrayView<float> mean, ArrayView<float> rstd, int rows, int channels)
        {
            const string kernel = nameof(LayerNormBackward);
            CheckRows(kernel, rows, channels, (nameof(dInput), dInput), (nameof(dOutput), dOutput), (nameof(input), input));
            Check.Length(kernel, nameof(dWeight), dWeight, channels);
            if (dBias.Length > 0) Check.Length(kernel, nameof(dBias), dBias, channels);
            Check.Length(kernel, nameof(weight), weight, channels);
            Check.Length(kernel, nameof(mean), mean, rows);
            Check.Length(kernel, nameof(rstd), rstd, rows);
            NormBackward(kernel, dInput, dWeight, dBias, dOutput, input, weight, mean, rstd, rows, channels);
        }

        /// <summary>output = input * rsqrt(mean(input^2) + epsilon) * weight (T5, Llama: no centring, no bias); saves rstd[rows].</summary>
        public void RmsNormForward(ArrayView<float> output, ArrayView<float> rstd, ArrayView<float> input, ArrayView<float> weight,
            int rows, int channels, float epsilon)
        {
            const string kernel = nameof(RmsNormForward);
            CheckRows(kernel, rows, channels, (nameof(output), output), (nameof(input), input));
            Check.Length(kernel, nameof(rstd), rstd, rows);
            Check.Length(kernel, nameof(weight), weight, channels);
            Check.NonNegative(kernel, nameof(epsilon), epsilon);
            Load(nameof(RmsNormForwardKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    int, int, float>(RmsNormForwardKernel))
                (RowsConfig(kernel, rows), output, rstd, input, weight, rows, channels, epsilon);
        }

        /// <summary>The gradients of <see cref="RmsNormForward"/>, ADDED to <paramref name="dInput"/> and <paramref name="dWeight"/>.</summary>
        public void RmsNormBackward(ArrayView<float> dInput, ArrayView<float> dWeight, ArrayView<float> dOutput, ArrayView<float> input,
            ArrayView<float> weight, ArrayView<float> rstd, int rows, int channels)
        {
            const string kernel = nameof(RmsNormBackward);
            CheckRows(kernel, rows, channels, (nameof(dInput), dInput), (nameof(dOutput), dOutput), (nameof(input), input));
            Check.Length(kernel, nameof(dWeight), dWeight, channels);
            Check.Length(kernel, nameof(weight), weight, channels);
            Check.Length(kernel, nameof(rstd), rstd, rows);
            NormBackward(kernel, dInput, dWeight, default, dOutput, input, weight, default, rstd, rows, channels);
        }

        private static void CheckRows(string kernel, int rows, int channels, params (string Name, ArrayView<float> View)[] tensors)
        {
            Check.Positive(kernel, nameof(rows), rows);
            Check.Positive(kernel, nameof(channels), channels);
            foreach (var (name, view) in tensors) Check.Length(kernel, name, view, (long)rows * channels);
        }

        /// <summary>Both norms: dInput per row, then the parameter gradients per chunk of rows and their ordered sum. mean is default for RMSNorm.</summary>
        private void NormBackward(string kernel, ArrayView<float> dInput, ArrayView<float> dWeight, ArrayView<float> dBias, ArrayView<float> dOutput,
            ArrayView<float> input, ArrayView<float> weight, ArrayView<float> mean, ArrayView<float> rstd, int rows, int channels)
        {
            Load(nameof(NormBackwardInputKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, int, int>(NormBackwardInputKernel))
                (RowsConfig(kernel, rows), dInput, dOutput, input, weight, mean, rstd, rows, channels);

            int chunks = (rows + NormChunkRows - 1) / NormChunkRows;
            int channelBlocks = (channels + WarpSize - 1) / WarpSize;
            var partials = Scratch<float>(nameof(NormBackward), 2L * chunks * channels);
            Load(nameof(NormParameterPartialsKernel), acc => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, int, int>(NormParameterPartialsKernel))
                (WarpGroups(kernel, chunks * channelBlocks, RowGroupSize), partials, dOutput, input, mean, rstd, rows, channels);
            Load(nameof(NormParameterSumKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, int, int>(NormParameterSumKernel))
                (channels, dWeight, dBias, partials, chunks, channels);
        }

        /// <summary>One warp per row: mean, then the variance around it (two passes over the row, which stays in L1).</summary>
        [Kernel(RowGroupSize)]
        internal static void LayerNormForwardKernel(ArrayView<float> output, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> input,
            ArrayView<float> weight, ArrayView<float> bias, int rows, int channels, float epsilon)
        {
            int row = Grid.IdxX * RowsPerGroup + Warp.WarpIdx;
            if (row >= rows) return; // a whole warp leaves: no shuffle misses a lane
            long start = (long)row * channels;
            float sum = 0f;
            for (int c = Warp.LaneIdx; c < channels; c += WarpSize) sum += input[start + c];
            float mu = WarpSum(sum) / channels;
            float squares = 0f;
            for (int c = Warp.LaneIdx; c < channels; c += WarpSize)
            {
                float d = input[start + c] - mu;
                squares += d * d;
            }
            float r = XMath.Rsqrt(WarpSum(squares) / channels + epsilon);
            bool hasBias = bias.Length > 0;
            for (int c = Warp.LaneIdx; c < channels; c += WarpSize)
            {
                float y = (input[start + c] - mu) * r * weight[c];
                output[start + c] = hasBias ? y + bias[c] : y;
            }
            if (Warp.LaneIdx == 0)
            {
                mean[row] = mu;
                rstd[row] = r;
            }
        }

        /// <summary>One warp per row: the mean square, then the scaled row.</summary>
        [Kernel(RowGroupSize)]
        internal static void RmsNormForwardKernel(ArrayView<float> output, ArrayView<float> rstd, ArrayView<float> input, ArrayView<float> weight,
            int rows, int channels, float epsilon)
        {
            int row = Grid.IdxX * RowsPerGroup + Warp.WarpIdx;
            if (row >= rows) return;
            long start = (long)row * channels;
            float squares = 0f;
            for (int c = Warp.LaneIdx; c < channels; c += WarpSize)
            {
                float x = input[start + c];
                squares += x * x;
            }
            float r = XMath.Rsqrt(WarpSum(squares) / channels + epsilon);
            for (int c = Warp.LaneIdx; c < channels; c += WarpSize) output[start + c] = input[start + c] * r * weight[c];
            if (Warp.LaneIdx == 0) rstd[row] = r;
        }

        /// <summary>
        /// dInput of both norms, one warp per row. With xhat = (x - mean) * rstd (mean = 0 for RMSNorm) and g = dy * w,
        /// y = xhat * w (+ b) gives dxhat = g, and d xhat_j / d x_i = rstd (delta_ij - 1/C - xhat_i xhat_j / C) for LayerNorm
        /// (rstd (delta_ij - xhat_i xhat_j / C) for RMSNorm), so dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
        /// without the mean(g) term for RMSNorm.
        /// </summary>
        [Kernel(RowGroupSize)]
        internal static void NormBackwardInputKernel(ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<float> input, ArrayView<float> weight,
            ArrayView<float> mean, ArrayView<float> rstd, int rows, int channels)
        {
            int row = Grid.IdxX * RowsPerGroup + Warp.WarpIdx;
            if (row >= rows) return;
            long start = (long)row * channels;
            bool centred = mean.Length > 0;
            float mu = centred ? mean[row] : 0f;
            float r = rstd[row];
            float gSum = 0f, gxSum = 0f;
            for (int c = Warp.LaneIdx; c < channels; c += WarpSize)
            {
                float g = dOutput[start + c] * weight[c];
                gSum += g;
                gxSum += g * (input[start + c] - mu) * r;
            }
            float gMean = centred ? WarpSum(gSum) / channels : 0f;
            float gxMean = WarpSum(gxSum) / channels;
            for (int c = Warp.LaneIdx; c < channels; c += WarpSize)
            {
                float g = dOutput[start + c] * weight[c];
                float xhat = (input[start + c] - mu) * r;
                dInput[start + c] += r * (g - gMean - xhat * gxMean);
            }
        }

        /// <summary>
        /// dWeight = sum over rows of dy * xhat, dBias = sum over rows of dy: this group's chunk of rows for 32 channels
        /// (lane = channel, warp w takes rows w, w + 8, ...), the 8 warps' sums added in warp order through shared memory.
        /// partials holds [chunks, channels] weight sums, then [chunks, channels] bias sums.
        /// </summary>
        [Kernel(RowGroupSize)]
        internal static void NormParameterPartialsKernel(ArrayView<float> partials, ArrayView<float> dOutput, ArrayView<float> input,
            ArrayView<float> mean, ArrayView<float> rstd, int rows, int channels)
        {
            var weightSums = SharedMemory.Allocate<float>(RowGroupSize);
            var biasSums = SharedMemory.Allocate<float>(RowGroupSize);
            int channelBlocks = (channels + WarpSize - 1) / WarpSize;
            int chunks = Grid.DimX / channelBlocks;
            int chunk = Grid.IdxX / channelBlocks;
            int c = Grid.IdxX % channelBlocks * WarpSize + Warp.LaneIdx;
            bool centred = mean.Length > 0;
            int end = XMath.Min(rows, (chunk + 1) * NormChunkRows);
            float dw = 0f, db = 0f;
            if (c < channels)
            {
                for (int row = chunk * NormChunkRows + Warp.WarpIdx; row < end; row += RowsPerGroup)
                {
                    long i = (long)row * channels + c;
                    float dy = dOutput[i];
                    float xhat = (input[i] - (centred ? mean[row] : 0f)) * rstd[row];
                    dw += dy * xhat;
                    db += dy;
                }
            }
            weightSums[Group.IdxX] = dw;
            biasSums[Group.IdxX] = db;
            Group.Barrier();
            if (Warp.WarpIdx == 0 && c < channels)
            {
                float weightTotal = 0f, biasTotal = 0f;
                for (int w = 0; w < RowsPerGroup; w++)
                {
                    weightTotal += weightSums[w * WarpSize + Warp.LaneIdx];
                    biasTotal += biasSums[w * WarpSize + Warp.LaneIdx];
                }
                partials[(long)chunk * channels + c] = weightTotal;
                partials[(long)(chunks + chunk) * channels + c] = biasTotal;
            }
        }

        /// <summary>One thread per channel adds the chunks' partial sums in chunk order (dBias optional: default).</summary>
        [Kernel]
        internal static void NormParameterSumKernel(Index1D c, ArrayView<float> dWeight, ArrayView<float> dBias, ArrayView<float> partials, int chunks, int channels)
        {
            float weightTotal = 0f, biasTotal = 0f;
            for (int k = 0; k < chunks; k++)
            {
                weightTotal += partials[(long)k * channels + c];
                biasTotal += partials[(long)(chunks + k) * channels + c];
            }
            dWeight[c] += weightTotal;
            if (dBias.Length > 0) dBias[c] += biasTotal;
        }
    }
}
