using System;
using ILGPU;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// One buffer of a generated model's plan: its size per copy as a function of the run-time batch, time and (for an
    /// encoder-decoder's encoder side) source time, and
    /// its copies (one per layer for activations the backward pass reads, else one). The model binds every buffer to
    /// a slice of one device allocation, sized for the largest batch and time it has seen.
    /// </summary>
    public sealed class DeviceBuffer
    {
        private readonly Func<int, int, int, long> elements;
        private ArrayView<float> view;
        private long perCopy;

        /// <param name="name">The plan's name of the buffer, for errors.</param>
        /// <param name="elements">Elements of one copy for (batch, time).</param>
        /// <param name="copies">One per layer when the backward pass reads every layer's value, else one.</param>
        /// <param name="bytesPerElement">4 for float buffers; 1 for byte masks (dropout), packed four to a float of the allocation.</param>
        public DeviceBuffer(string name, Func<int, int, long> elements, int copies = 1, int bytesPerElement = 4)
            : this(name, (b, t, _) => elements(b, t), copies, bytesPerElement)
        {
        }

        /// <param name="name">The plan's name of the buffer, for errors.</param>
        /// <param name="elements">Elements of one copy for (batch, time, source time).</param>
        /// <param name="copies">One per layer when the backward pass reads every layer's value, else one.</param>
        /// <param name="bytesPerElement">4 for float buffers; 1 for byte masks (dropout), packed four to a float of the allocation.</param>
        public DeviceBuffer(string name, Func<int, int, int, long> elements, int copies = 1, int bytesPerElement = 4)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(copies, 1);
            if (bytesPerElement is not (1 or 4)) throw new ArgumentOutOfRangeException(nameof(bytesPerElement), bytesPerElement, "Buffers hold floats (4) or bytes (1).");
            Name = name;
            this.elements = elements;
            Copies = copies;
            BytesPerElement = bytesPerElement;
        }

        /// <summary>The plan's name ("DecoderLayer.h (Norm)").</summary>
        public string Name { get; }

        public int Copies { get; }

        public int BytesPerElement { get; }

        /// <summary>Elements of one copy for a batch of <paramref name="batch"/> sequences of <paramref name="time"/> tokens (and <paramref name="sourceTime"/> source tokens).</summary>
        public long ElementsPerCopy(int batch, int time, int sourceTime = 0) => elements(batch, time, sourceTime);

        /// <summary>Floats of the allocation one copy takes (a byte buffer is rounded up to whole floats).</summary>
        public long FloatsPerCopy(int batch, int time, int sourceTime = 0)
            => BytesPerElement == 4 ? elements(batch, time, sourceTime) : (elements(batch, time, sourceTime) + 3) / 4;

        /// <summary>Copy <paramref name="copy"/> of a byte buffer.</summary>
        public ArrayView<byte> Bytes(int copy)
        {
            if (BytesPerElement != 1) throw new InvalidOperationException($"Buffer '{Name}' holds floats, not bytes.");
            return this[copy].Cast<byte>().SubView(0, byteLength);
        }

        /// <summary>Copy <paramref name="copy"/> read as 32-bit integers (a router's chosen experts): the same four bytes an element.</summary>
        public ArrayView<int> Ints(int copy) => this[copy].Cast<int>();

        private long byteLength;

        internal void Bind(ArrayView<float> slice, long floatsPerCopy, long elementsPerCopy)
        {
            view = slice;
            perCopy = floatsPerCopy;
            byteLength = elementsPerCopy;
        }

        /// <summary>Copy <paramref name="copy"/> (the layer, for a buffer with a copy per layer).</summary>
        public ArrayView<float> this[int copy]
        {
            get
            {
                if ((uint)copy >= (uint)Copies)
                    throw new ArgumentOutOfRangeException(nameof(copy), copy, $"Buffer '{Name}' has {Copies} cop{(Copies == 1 ? "y" : "ies")}.");
                if (perCopy == 0 && view.Length == 0)
                    throw new InvalidOperationException($"Buffer '{Name}' is used before the model sized its buffers for a batch.");
                return view.SubView(copy * perCopy, perCopy);
            }
        }
    }
}
