using System;
using System.Collections.Generic;
using ILGPU;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    // Fixed position terms whose tables are computed on the host: rotary positions (Hugging Face's rotate-half
    // convention) on queries or keys, forward and backward, and sinusoidal positions added to the embeddings.
    //
    // Channel j < D/2 of a head pairs with channel j + D/2; position p turns the pair by the angle p * base^(-2j/D):
    //   y1 = x1 cos - x2 sin,  y2 = x2 cos + x1 sin.
    // The rotation is orthogonal, so the backward turns the gradient back (the transpose is the rotation by -angle):
    //   dx1 += dy1 cos + dy2 sin,  dx2 += dy2 cos - dy1 sin,
    // and needs nothing saved. One thread per pair; the cosines and sines come from a [positions, D/2] table computed once
    // on the host in double precision and rounded to float, as the TorchSharp backend rounds them, so both backends
    // rotate by the same numbers (float angles would differ by ~1e-7 x position).
    public sealed partial class Kernels
    {
        private readonly Dictionary<string, MemoryBuffer1D<float, Stride1D.Dense>> positionTables = new();

        /// <summary>
        /// output[r, h*D + i] = the rotated input[r*inputStride + h*D + i] for rows r = b*time + t at position offset + t,
        /// over <paramref name="heads"/> heads of <paramref name="headDim"/> channels; output is dense [rows, heads*D].
        /// </summary>
        public void RotaryForward(ArrayView<float> output, ArrayView<float> input, int rows, int time, int heads, int headDim, int inputStride, double @base, int offset)
        {
            const string kernel = nameof(RotaryForward);
            var table = CheckRotary(kernel, (nameof(output), output), (nameof(input), input), rows, time, heads, headDim, inputStride, @base, offset);
            Load(nameof(RotaryForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, RotaryLayout>(RotaryForwardKernel))
                (Check.IndexRange(kernel, output.SubView(0, (long)rows * heads * headDim / 2)), output, input, table, new RotaryLayout(time, heads, headDim, inputStride, offset));
        }

        /// <summary>dInput (rows of <paramref name="inputStride"/> floats) += the gradient turned back: the transpose of <see cref="RotaryForward"/>.</summary>
        public void RotaryBackward(ArrayView<float> dInput, ArrayView<float> dOutput, int rows, int time, int heads, int headDim, int inputStride, double @base, int offset)
        {
            const string kernel = nameof(RotaryBackward);
            var table = CheckRotary(kernel, (nameof(dOutput), dOutput), (nameof(dInput), dInput), rows, time, heads, headDim, inputStride, @base, offset);
            Load(nameof(RotaryBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, RotaryLayout>(RotaryBackwardKernel))
                (Check.IndexRange(kernel, dOutput.SubView(0, (long)rows * heads * headDim / 2)), dInput, dOutput, table, new RotaryLayout(time, heads, headDim, inputStride, offset));
        }

        /// <summary>Checks the sizes (naming the launcher's arguments) and returns the table: [positions, D/2] cosines, then as many sines.</summary>
        private ArrayView<float> CheckRotary(string kernel, (string Name, ArrayView<float> View) dense, (string Name, ArrayView<float> View) strided, int rows, int time, int heads, int headDim, int inputStride, double @base, int offset)
        {
            Check.Positive(kernel, nameof(rows), rows);
            Check.Positive(kernel, nameof(time), time);
            Check.Positive(kernel, nameof(heads), heads);
            Check.Positive(kernel, nameof(headDim), headDim);
            if (headDim % 2 != 0) throw new ArgumentException($"{kernel}: headDim {headDim} must be even (channels rotate in pairs).", nameof(headDim));
            if (rows % time != 0) throw new ArgumentException($"{kernel}: {rows} rows are not whole sequences of {time}.", nameof(rows));
            if (inputStride < heads * headDim) throw new ArgumentException($"{kernel}: a row stride of {inputStride} is narrower than {heads} heads of {headDim}.", nameof(inputStride));
            if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset), offset, $"{kernel}: offset must be >= 0.");
            if (!(@base > 1) || double.IsInfinity(@base)) throw new ArgumentOutOfRangeException(nameof(@base), @base, $"{kernel}: base must be a finite number > 1.");
            Check.Length(kernel, dense.Name, dense.View, Check.Indexable(kernel, dense.Name, (long)rows * heads * headDim));
            Check.Length(kernel, strided.Name, strided.View, Check.Indexable(kernel, strided.Name, (long)(rows - 1) * inputStride + heads * headDim));
            return RotaryTable(@base, headDim, offset + time);
        }

        /// <summary>cos and sin of p * base^(-2j/D) for p below <paramref name="positions"/>: [positions, D/2] cosines, then as many sines.</summary>
        private ArrayView<float> RotaryTable(double @base, int headDim, int positions)
        {
            int half = headDim / 2;
            return PositionTable($"rotary {@base.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} {headDim}", positions, 2 * half, rows =>
            {
                var values = new float[2L * rows * half];
                for (int p = 0; p < rows; p++)
                    for (int j = 0; j < half; j++)
                    {
                        // As TorchSharp's Rotary: exp(2j * -ln(base) / D), then the angle, in double.
                        double angle = p * Math.Exp(2 * j * (-Math.Log(@base) / headDim));
                        values[p * half + j] = (float)Math.Cos(angle);
                        values[(long)rows * half + p * half + j] = (float)Math.Sin(angle);
                    }
                return values;
            });
        }

        /// <summary>
        /// A table of <paramref name="floatsPerPosition"/> floats per position, computed on the host by
        /// <paramref name="compute"/> for at least <paramref name="positions"/> positions, kept per <paramref name="key"/>
        /// and grown geometrically when a longer sequence (decoding) needs more.
        /// </summary>
        private ArrayView<float> PositionTable(string key, int positions, int floatsPerPosition, Func<int, float[]> compute)
        {
            positionTables.TryGetValue(key, out var existing);
            long held = (existing?.Length ?? 0) / floatsPerPosition;
            if (held >= positions) return existing!.View;
            if (existing is not null) { Accelerator.Synchronize(); existing.Dispose(); } // a kernel in flight may read the old table
            var table = Accelerator.Allocate1D(compute(Math.Max(positions, (int)(2 * held))));
            positionTables[key] = table;
            return table.View;
        }


        /// <summary>
        /// output[b, t, :] += the fixed sinusoidal position term of position offset + t ("Attention Is All You Need",
        /// interleaved as the TorchSharp backend writes it: channel 2i is sin(p 10000^(-2i/C)), channel 2i + 1 its cos),
        /// in place. Its backward is the identity: the caller adds the output gradient to the input's.
        /// </summary>
        public void SinusoidalPositionsForward(ArrayView<float> output, int batch, int time, int channels, int offset)
        {
            const string kernel = nameof(SinusoidalPositionsForward);
            if (channels % 2 != 0) throw new ArgumentException($"{kernel}: {channels} channels are not sin/cos pairs.", nameof(channels));
            Check.Positive(kernel, nameof(time), time);
            if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset), offset, $"{kernel}: offset must be >= 0.");
            var table = SinusoidalTable(channels, offset + time);
            CheckPositions(kernel, output, table, batch, time, channels, offset);
            Load(nameof(PositionsForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>(PositionsForwardKernel))
                (Check.IndexRange(kernel, output.SubView(0, (long)batch * time * channels)), output, table, time, channels, offset);
        }

        /// <summary>The [positions, channels] sinusoidal table, computed in double on the host as TorchSharp's.</summary>
        private ArrayView<float> SinusoidalTable(int channels, int positions)
            => PositionTable($"sinusoidal {channels}", positions, channels, rows =>
            {
                var values = new float[(long)rows * channels];
                for (int p = 0; p < rows; p++)
                    for (int i = 0; i < channels / 2; i++)
                    {
                        double angle = p * Math.Exp(2 * i * (-Math.Log(10000.0) / channels));
                        values[(long)p * channels + 2 * i] = (float)Math.Sin(angle);
                        values[(long)p * channels + 2 * i + 1] = (float)Math.Cos(angle);
                    }
                return values;
            });

        /// <summary>Sizes of a rotary launch (the table's positions follow from its length).</summary>
        internal readonly struct RotaryLayout
        {
            public readonly int Time, Heads, HeadDim, InputStride, Offset;

            public RotaryLayout(int time, int heads, int headDim, int inputStride, int offset)
                => (Time, Heads, HeadDim, InputStride, Offset) = (time, heads, headDim, inputStride, offset);
        }

        /// <summary>One thread per pair (row, head, j &lt; D/2).</summary>
        private static (int Dense, int Strided, int Cos, int Sin) RotaryIndices(Index1D i, ArrayView<float> table, RotaryLayout layout)
        {
            int half = layout.HeadDim / 2;
            int j = i % half;
            int head = i / half % layout.Heads;
            int row = i / half / layout.Heads;
            int position = layout.Offset + row % layout.Time;
            int sinStart = (int)(table.Length / 2);
            return (row * layout.Heads * layout.HeadDim + head * layout.HeadDim + j, row * layout.InputStride + head * layout.HeadDim + j,
                position * half + j, sinStart + position * half + j);
        }

        [Kernel]
        internal static void RotaryForwardKernel(Index1D i, ArrayView<float> output, ArrayView<float> input, ArrayView<float> table, RotaryLayout layout)
        {
            var (dense, strided, cos, sin) = RotaryIndices(i, table, layout);
            int half = layout.HeadDim / 2;
            float x1 = input[strided], x2 = input[strided + half], c = table[cos], s = table[sin];
            output[dense] = x1 * c - x2 * s;
            output[dense + half] = x2 * c + x1 * s;
        }

        [Kernel]
        internal static void RotaryBackwardKernel(Index1D i, ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<float> table, RotaryLayout layout)
        {
            var (dense, strided, cos, sin) = RotaryIndices(i, table, layout);
            int half = layout.HeadDim / 2;
            float dy1 = dOutput[dense], dy2 = dOutput[dense + half], c = table[cos], s = table[sin];
            dInput[strided] += dy1 * c + dy2 * s;
            dInput[strided + half] += dy2 * c - dy1 * s;
        }
    }
}
