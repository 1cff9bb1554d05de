using System;
using System.Collections.Generic;
using System.IO;

namespace ModelDsl.Checkpoints
{
    /// <summary>
    /// One tensor to write with <see cref="SafetensorsFile.Write"/>: its name, dtype string and shape, and a callback
    /// that writes exactly its raw little-endian, row-major bytes (element count x dtype size) to the stream it is
    /// given. The callback lets a backend stream large tensors in chunks instead of building one array.
    /// </summary>
    /// <param name="Name">The tensor's name in the file; not empty, not "__metadata__", unique within the file.</param>
    /// <param name="DType">A safetensors dtype string (see <see cref="SafetensorsFile.SupportedDTypes"/>).</param>
    /// <param name="Shape">The shape; empty for a 0-d scalar.</param>
    /// <param name="WriteData">Writes the tensor's bytes; called once, in file order.</param>
    public sealed record SafetensorsWriteEntry(string Name, string DType, IReadOnlyList<long> Shape, Action<Stream> WriteData)
    {
        /// <summary>An entry whose bytes are already in memory (little-endian, row-major).</summary>
        public static SafetensorsWriteEntry FromBytes(string name, string dtype, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data)
            => new(name, dtype, shape, stream => stream.Write(data.Span));
    }
}
