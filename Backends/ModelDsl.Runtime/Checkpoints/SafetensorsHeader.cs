using System;
using System.Collections.Generic;

namespace ModelDsl.Checkpoints
{
    /// <summary>One tensor's entry in a safetensors header. Offsets are relative to the start of the data buffer.</summary>
    /// <param name="Name">The tensor's name in the file.</param>
    /// <param name="DType">The safetensors dtype string ("F32", "BF16", "I64", ...).</param>
    /// <param name="Shape">The shape; empty for a 0-d scalar.</param>
    /// <param name="Begin">First byte, relative to the data buffer.</param>
    /// <param name="End">One past the last byte, relative to the data buffer.</param>
    public sealed record SafetensorsTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
    {
        /// <summary>Number of elements (1 for a scalar, 0 when a dimension is 0).</summary>
        public long ElementCount
        {
            get
            {
                long n = 1;
                foreach (var d in Shape) n = checked(n * d);
                return n;
            }
        }

        /// <summary>Bytes in the data buffer (<see cref="End"/> - <see cref="Begin"/>).</summary>
        public long ByteLength => End - Begin;

        /// <summary>The shape as "[a, b]".</summary>
        public string ShapeText => SafetensorsHeader.FormatShape(Shape);
    }

    /// <summary>The parsed, validated header of a safetensors file.</summary>
    public sealed class SafetensorsHeader
    {
        internal SafetensorsHeader(string path, long headerLength, long fileLength,
            IReadOnlyDictionary<string, SafetensorsTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
        {
            Path = path;
            HeaderLength = headerLength;
            FileLength = fileLength;
            Tensors = tensors;
            Metadata = metadata;
        }

        /// <summary>The file the header was read from.</summary>
        public string Path { get; }

        /// <summary>Length N of the JSON header in bytes (the file's first 8 bytes).</summary>
        public long HeaderLength { get; }

        /// <summary>Size of the whole file in bytes when the header was read.</summary>
        public long FileLength { get; }

        /// <summary>File offset of the data buffer: 8 + <see cref="HeaderLength"/>.</summary>
        public long DataStart => 8 + HeaderLength;

        /// <summary>Size of the data buffer in bytes.</summary>
        public long DataLength => FileLength - DataStart;

        /// <summary>The tensors by name, in the order the header lists them.</summary>
        public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors { get; }

        /// <summary>The "__metadata__" entries (empty when the file has none).</summary>
        public IReadOnlyDictionary<string, string> Metadata { get; }

        /// <summary>Formats a shape as "[a, b]", as the messages of this library do.</summary>
        public static string FormatShape(IReadOnlyList<long> shape)
        {
            ArgumentNullException.ThrowIfNull(shape);
            return "[" + string.Join(", ", shape) + "]";
        }
    }
}
