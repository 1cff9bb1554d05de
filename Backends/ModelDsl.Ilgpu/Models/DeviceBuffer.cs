using System;
using ILGPU;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// One buffer of a generated model's plan: its size per copy as a function of the run-time batch and time, and
    /// its copies (one per layer for activations the backward pass reads, else one). The model binds every buffer to
    /// a slice of one device allocation, sized for the largest batch and time it has seen.
    /// </summary>
    public sealed class DeviceBuffer
    {
        private readonly Func<int, int, long> elements;
        private ArrayView<float> view;
        private long perCopy;

        public DeviceBuffer(string name, Func<int, int, long> elements, int copies = 1)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(copies, 1);
            Name = name;
            this.elements = elements;
            Copies = copies;
        }

        /// <summary>The plan's name ("DecoderLayer.h (Norm)").</summary>
        public string Name { get; }

        public int Copies { get; }

        /// <summary>Elements of one copy for a batch of <paramref name="batch"/> sequences of <paramref name="time"/> tokens.</summary>
        public long ElementsPerCopy(int batch, int time) => elements(batch, time);

        internal void Bind(ArrayView<float> slice, long elementsPerCopy)
        {
            view = slice;
            perCopy = elementsPerCopy;
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
