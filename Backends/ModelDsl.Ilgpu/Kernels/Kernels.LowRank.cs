using ILGPU;

namespace ModelDsl.Ilgpu
{
    // LoRA: the low-rank update beside a projection, y = s (x A^T) B^T with A = lora_A [rank, in], B = lora_B [out, rank]
    // (PEFT's layout) and s = alpha / rank, composed from the tiled matrix product. The forward keeps the scaled hidden
    // h = s x A^T [rows, rank] (rank is small: 4 to 64), so the backward needs no recomputation:
    //   dB += dy^T h,   dh = s dy B,   dA += dh^T x,   dx += dh A.
    public sealed partial class Kernels
    {
        /// <summary>
        /// output [rows, outputs] = scale (x A^T) B^T for x [rows, inputs], A [rank, inputs], B [outputs, rank]; keeps the scaled
        /// hidden [rows, rank] for the backward.
        /// </summary>
        public void LowRankForward(ArrayView<float> output, ArrayView<float> hidden, ArrayView<float> x, ArrayView<float> a, ArrayView<float> b,
            int rows, int inputs, int outputs, int rank, float scale)
        {
            Check.Positive(nameof(LowRankForward), nameof(rank), rank);
            Matmul(hidden, x, a, default, rows, rank, inputs, transposeA: false, transposeB: true, accumulate: false);
            Scale(hidden.SubView(0, (long)rows * rank), scale);
            Matmul(output, hidden, b, default, rows, outputs, rank, transposeA: false, transposeB: true, accumulate: false);
        }

        /// <summary>
        /// The backward, accumulating into dX [rows, inputs], dA [rank, inputs] and dB [outputs, rank] from dOutput [rows, outputs],
        /// the input x and the forward's scaled hidden.
        /// </summary>
        public void LowRankBackward(ArrayView<float> dX, ArrayView<float> dA, ArrayView<float> dB, ArrayView<float> dOutput,
            ArrayView<float> x, ArrayView<float> hidden, ArrayView<float> a, ArrayView<float> b, int rows, int inputs, int outputs, int rank, float scale)
        {
            Check.Positive(nameof(LowRankBackward), nameof(rank), rank);
            Matmul(dB, dOutput, hidden, default, outputs, rank, rows, transposeA: true, transposeB: false, accumulate: true);
            // The hidden's gradient: working memory [rows, rank].
            var dHidden = Scratch<float>(nameof(LowRankBackward), (long)rows * rank);
            Matmul(dHidden, dOutput, b, default, rows, rank, outputs, transposeA: false, transposeB: false, accumulate: false);
            Scale(dHidden, scale);
            Matmul(dA, dHidden, x, default, rank, inputs, rows, transposeA: true, transposeB: false, accumulate: true);
            Matmul(dX, dHidden, a, default, rows, inputs, rank, transposeA: false, transposeB: false, accumulate: true);
        }
    }
}
