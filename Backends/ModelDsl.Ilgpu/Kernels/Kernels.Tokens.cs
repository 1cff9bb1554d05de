using ILGPU;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // One token per sequence: BERT's pooler and ViT's classifier read the first token of each sequence; the backward
    // scatters the gradient back into that row. Element-wise over [batch, channels], one thread per element.
    public sealed partial class Kernels
    {
        /// <summary>output[b, :] = input[b, index, :] for input [batch, time, channels].</summary>
        public void SelectTokenForward(ArrayView<float> output, ArrayView<float> input, int batch, int time, int channels, int index)
        {
            const string kernel = nameof(SelectTokenForward);
            CheckSelectToken(kernel, output, input, batch, time, channels, index);
            Load(nameof(SelectTokenForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>(SelectTokenForwardKernel))
                (Check.IndexRange(kernel, output.SubView(0, (long)batch * channels)), output, input, time, channels, index);
        }

        /// <summary>dInput[b, index, :] += dOutput[b, :]; the other rows of dInput are left as they are.</summary>
        public void SelectTokenBackward(ArrayView<float> dInput, ArrayView<float> dOutput, int batch, int time, int channels, int index)
        {
            const string kernel = nameof(SelectTokenBackward);
            CheckSelectToken(kernel, dOutput, dInput, batch, time, channels, index);
            Load(nameof(SelectTokenBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>(SelectTokenBackwardKernel))
                (Check.IndexRange(kernel, dOutput.SubView(0, (long)batch * channels)), dInput, dOutput, time, channels, index);
        }

        private static void CheckSelectToken(string kernel, ArrayView<float> selected, ArrayView<float> sequence, int batch, int time, int channels, int index)
        {
            Check.Positive(kernel, nameof(batch), batch);
            Check.Positive(kernel, nameof(time), time);
            Check.Positive(kernel, nameof(channels), channels);
            if ((uint)index >= (uint)time)
                throw new System.ArgumentOutOfRangeException(nameof(index), index, $"{kernel}: token {index} is outside a sequence of {time}.");
            bool forward = kernel == nameof(SelectTokenForward);
            Check.Length(kernel, forward ? "output" : "dOutput", selected, (long)batch * channels);
            Check.Length(kernel, forward ? "input" : "dInput", sequence, (long)batch * time * channels);
        }

        [Kernel]
        internal static void SelectTokenForwardKernel(Index1D i, ArrayView<float> output, ArrayView<float> input, int time, int channels, int index)
        {
            int b = i / channels, c = i % channels;
            output[i] = input[((long)b * time + index) * channels + c];
        }

        [Kernel]
        internal static void SelectTokenBackwardKernel(Index1D i, ArrayView<float> dInput, ArrayView<float> dOutput, int time, int channels, int index)
        {
            int b = i / channels, c = i % channels;
            dInput[((long)b * time + index) * channels + c] += dOutput[i];
        }
    }
}
