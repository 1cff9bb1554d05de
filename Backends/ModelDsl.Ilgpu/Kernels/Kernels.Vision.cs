using ILGPU;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // ViT's input side: the patch embedding (a Conv2d whose kernel equals its stride) and the class token.
    //
    // The patch embedding is a matrix product once the patches are laid out as rows (im2col): patches [B*P, C*S*S],
    // row b*P + p holding patch p = (py, px) of image b with column (c*S + ky)*S + kx, which is exactly the order of
    // the Conv2d weight [Hidden, C, S, S] flattened to [Hidden, C*S*S]. Then y = patches W^T + b is the tiled Matmul
    // (nn.Linear's layout) and dW += dy^T patches its weight gradient. Patches do not overlap, so the rows are a
    // permutation of the pixels: the gather is as large as the image batch, built in working memory by the forward and
    // built again by the backward (recomputed rather than kept, as flash attention recomputes its scores). The pixels
    // are a graph input, so no pixel gradient is needed.
    public sealed partial class Kernels
    {
        /// <summary>output [batch, P, hidden] = Conv2d(pixels [batch, channels, image, image], weight [hidden, channels, patch, patch], bias; stride patch), flattened and transposed.</summary>
        public void PatchEmbeddingForward(ArrayView<float> output, ArrayView<float> pixels, ArrayView<float> weight, ArrayView<float> bias,
            int batch, int channels, int image, int patch, int hidden)
        {
            const string kernel = nameof(PatchEmbeddingForward);
            var (rows, columns) = CheckPatches(kernel, pixels, weight, batch, channels, image, patch, hidden);
            Check.Length(kernel, nameof(output), output, (long)rows * hidden);
            Check.Length(kernel, nameof(bias), bias, hidden);
            var patches = Patches(pixels, batch, channels, image, patch, rows, columns);
            Matmul(output, patches, weight, bias, rows, hidden, columns, transposeA: false, transposeB: true, accumulate: false);
        }

        /// <summary>dWeight += dOutput^T patches and dBias += the column sums of dOutput [batch, P, hidden].</summary>
        public void PatchEmbeddingBackward(ArrayView<float> dWeight, ArrayView<float> dBias, ArrayView<float> dOutput, ArrayView<float> pixels,
            int batch, int channels, int image, int patch, int hidden)
        {
            const string kernel = nameof(PatchEmbeddingBackward);
            var (rows, columns) = CheckPatches(kernel, pixels, dWeight, batch, channels, image, patch, hidden);
            Check.Length(kernel, nameof(dOutput), dOutput, (long)rows * hidden);
            Check.Length(kernel, nameof(dBias), dBias, hidden);
            var patches = Patches(pixels, batch, channels, image, patch, rows, columns);
            Matmul(dWeight, dOutput, patches, default, hidden, columns, rows, transposeA: true, transposeB: false, accumulate: true);
            BiasBackward(dBias, dOutput, rows, hidden);
        }

        /// <summary>output [batch, positions + 1, channels]: the token [channels] first, then input [batch, positions, channels].</summary>
        public void ClassTokenForward(ArrayView<float> output, ArrayView<float> input, ArrayView<float> token, int batch, int positions, int channels)
        {
            const string kernel = nameof(ClassTokenForward);
            CheckClassToken(kernel, output, input, token, batch, positions, channels);
            Load(nameof(ClassTokenForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(ClassTokenForwardKernel))
                (Check.IndexRange(kernel, output.SubView(0, (long)batch * (positions + 1) * channels)), output, input, token, positions, channels);
        }

        /// <summary>dInput[b, p] += dOutput[b, p + 1]; dToken += the sum over the batch (in batch order) of dOutput[b, 0].</summary>
        public void ClassTokenBackward(ArrayView<float> dInput, ArrayView<float> dToken, ArrayView<float> dOutput, int batch, int positions, int channels)
        {
            const string kernel = nameof(ClassTokenBackward);
            CheckClassToken(kernel, dOutput, dInput, dToken, batch, positions, channels);
            Load(nameof(ClassTokenInputGradientKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int>(ClassTokenInputGradientKernel))
                (Check.IndexRange(kernel, dInput.SubView(0, (long)batch * positions * channels)), dInput, dOutput, positions, channels);
            Load(nameof(ClassTokenGradientKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>(ClassTokenGradientKernel))
                (channels, dToken, dOutput, batch, positions, channels);
        }

        private (int Rows, int Columns) CheckPatches(string kernel, ArrayView<float> pixels, ArrayView<float> weight,
            int batch, int channels, int image, int patch, int hidden)
        {
            Check.Positive(kernel, nameof(batch), batch);
            Check.Positive(kernel, nameof(channels), channels);
            Check.Positive(kernel, nameof(patch), patch);
            Check.Positive(kernel, nameof(hidden), hidden);
            if (image < patch || image % patch != 0)
                throw new System.ArgumentException($"{kernel}: the image side {image} must be a positive multiple of the patch side {patch}.", nameof(image));
            int grid = image / patch;
            long rows = (long)batch * grid * grid, columns = (long)channels * patch * patch;
            Check.Length(kernel, nameof(pixels), pixels, Check.Indexable(kernel, nameof(pixels), (long)batch * channels * image * image));
            Check.Length(kernel, kernel == nameof(PatchEmbeddingForward) ? nameof(weight) : "dWeight", weight, Check.Indexable(kernel, "weight", hidden * columns));
            return ((int)Check.Indexable(kernel, "patch rows", rows), (int)columns);
        }

        /// <summary>The im2col gather of the patches into working memory [rows, columns] (see the comment above the class).</summary>
        private ArrayView<float> Patches(ArrayView<float> pixels, int batch, int channels, int image, int patch, int rows, int columns)
        {
            var patches = Scratch<float>("Patches", (long)rows * columns);
            Load(nameof(PatchGatherKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>(PatchGatherKernel))
                (Check.IndexRange(nameof(PatchGatherKernel), patches), patches, pixels, channels, image, patch);
            return patches;
        }

        private static void CheckClassToken(string kernel, ArrayView<float> withToken, ArrayView<float> withoutToken, ArrayView<float> token,
            int batch, int positions, int channels)
        {
            Check.Positive(kernel, nameof(batch), batch);
            Check.Positive(kernel, nameof(positions), positions);
            Check.Positive(kernel, nameof(channels), channels);
            bool forward = kernel == nameof(ClassTokenForward);
            Check.Length(kernel, forward ? "output" : "dOutput", withToken, (long)batch * (positions + 1) * channels);
            Check.Length(kernel, forward ? "input" : "dInput", withoutToken, (long)batch * positions * channels);
            Check.Length(kernel, forward ? nameof(token) : "dToken", token, channels);
        }

        /// <summary>One thread per element of the patch matrix: element (row, column) reads its pixel.</summary>
        [Kernel]
        internal static void PatchGatherKernel(Index1D i, ArrayView<float> patches, ArrayView<float> pixels, int channels, int image, int patch)
        {
            int columns = channels * patch * patch, grid = image / patch, perImage = grid * grid;
            int row = i / columns, column = i % columns;
            int b = row / perImage, p = row % perImage;
            int c = column / (patch * patch), ky = column / patch % patch, kx = column % patch;
            int y = p / grid * patch + ky, x = p % grid * patch + kx;
            patches[i] = pixels[(((long)b * channels + c) * image + y) * image + x];
        }

        [Kernel]
        internal static void ClassTokenForwardKernel(Index1D i, ArrayView<float> output, ArrayView<float> input, ArrayView<float> token, int positions, int channels)
        {
            int c = i % channels, t = i / channels % (positions + 1), b = i / channels / (positions + 1);
            output[i] = t == 0 ? token[c] : input[((long)b * positions + t - 1) * channels + c];
        }

        [Kernel]
        internal static void ClassTokenInputGradientKernel(Index1D i, ArrayView<float> dInput, ArrayView<float> dOutput, int positions, int channels)
        {
            int c = i % channels, p = i / channels % positions, b = i / channels / positions;
            dInput[i] += dOutput[((long)b * (positions + 1) + p + 1) * channels + c];
        }

        [Kernel]
        internal static void ClassTokenGradientKernel(Index1D c, ArrayView<float> dToken, ArrayView<float> dOutput, int batch, int positions, int channels)
        {
            float sum = 0f;
            for (int b = 0; b < batch; b++) sum += dOutput[(long)b * (positions + 1) * channels + c];
            dToken[c] += sum;
        }
    }
}
