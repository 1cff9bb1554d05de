using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using ModelDsl.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// Safetensors files as TorchSharp tensors. The format itself (header validation, dtype table, atomic writing) is
    /// the backend-neutral <see cref="SafetensorsFile"/>; this class maps dtypes to <see cref="ScalarType"/>s and moves
    /// bytes between the file and tensors. Tensors are read one at a time straight from the file.
    /// </summary>
    public static class Safetensors
    {
        private const int ChunkBytes = 64 << 20;

        private static readonly Dictionary<string, ScalarType> ScalarTypes = new(StringComparer.Ordinal)
        {
            ["F64"] = ScalarType.Float64,
            ["F32"] = ScalarType.Float32,
            ["F16"] = ScalarType.Float16,
            ["BF16"] = ScalarType.BFloat16,
            ["I64"] = ScalarType.Int64,
            ["I32"] = ScalarType.Int32,
            ["I16"] = ScalarType.Int16,
            ["I8"] = ScalarType.Int8,
            ["U8"] = ScalarType.Byte,
            ["BOOL"] = ScalarType.Bool,
        };

        /// <summary>The TorchSharp scalar type of a safetensors dtype string.</summary>
        /// <exception cref="ArgumentException">Unknown dtype.</exception>
        public static ScalarType ToScalarType(string dtype)
            => ScalarTypes.TryGetValue(dtype, out var type) ? type
                : throw new ArgumentException($"Unknown safetensors dtype '{dtype}' (supported: {string.Join(", ", ScalarTypes.Keys)}).", nameof(dtype));

        /// <summary>The safetensors dtype string of a TorchSharp scalar type.</summary>
        /// <exception cref="ArgumentException">The type has no safetensors dtype here (e.g. complex).</exception>
        public static string ToDType(ScalarType type)
        {
            foreach (var (name, t) in ScalarTypes)
                if (t == type) return name;
            throw new ArgumentException($"Tensors of type {type} cannot be stored in safetensors (supported: {string.Join(", ", ScalarTypes.Keys)}).", nameof(type));
        }

        /// <summary>
        /// Reads every tensor of the file as a CPU tensor of the stored dtype (F32 -> float32, BF16 -> bfloat16, ...).
        /// The caller owns (and disposes) the tensors.
        /// </summary>
        /// <exception cref="SafetensorsException">
        /// The file is not a valid safetensors file, it was truncated or changed size while it was read, or its tensors
        /// need more than <see cref="SafetensorsFile.MemoryLimitBytes"/> (checked before anything is allocated).
        /// </exception>
        public static Dictionary<string, Tensor> Load(string path)
        {
            ArgumentNullException.ThrowIfNull(path);
            TorchSharpRuntime.EnsureLoaded();
            using var stream = SafetensorsFile.OpenRead(path);
            var header = SafetensorsFile.ReadHeader(stream, path);
            SafetensorsFile.CheckFitsInMemory(header, header.Tensors.Values);
            var result = new Dictionary<string, Tensor>(header.Tensors.Count, StringComparer.Ordinal);
            try
            {
                foreach (var info in header.Tensors.Values)
                    result.Add(info.Name, ReadTensor(stream, header, info));
                SafetensorsFile.CheckUnchanged(stream, header);
            }
            catch
            {
                foreach (var t in result.Values) t.Dispose();
                throw;
            }
            return result;
        }

        /// <summary>
        /// Writes <paramref name="tensors"/> (in ordinal name order, so the file is deterministic) and optional metadata
        /// to <paramref name="path"/>, atomically: the data goes to a temporary file in the same folder, which then
        /// replaces <paramref name="path"/>; a failure leaves no partial file. Tensors may live on any device and need not
        /// be contiguous: contiguous CPU copies are written. An interrupted save can leave a hidden temporary file beside
        /// <paramref name="path"/>, which the next save to it removes (see <see cref="SafetensorsFile.Write"/>).
        /// </summary>
        /// <exception cref="ArgumentException">A name is empty, reserved or repeated, or a dtype cannot be stored.</exception>
        /// <exception cref="IOException">The file cannot be written (e.g. the folder does not exist).</exception>
        public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
        {
            ArgumentNullException.ThrowIfNull(path);
            ArgumentNullException.ThrowIfNull(tensors);
            TorchSharpRuntime.EnsureLoaded();

            var entries = new List<SafetensorsWriteEntry>();
            foreach (var (name, tensor) in tensors)
            {
                if (tensor is null || tensor.IsInvalid)
                    throw new ArgumentException($"Cannot write '{path}': tensor '{name}' is null or disposed.", nameof(tensors));
                string dtype;
                try { dtype = ToDType(tensor.dtype); }
                catch (ArgumentException e) { throw new ArgumentException($"Cannot write '{path}': tensor '{name}': {e.Message}", nameof(tensors), e); }
                entries.Add(new SafetensorsWriteEntry(name, dtype, tensor.shape, stream => WriteTensor(stream, tensor)));
            }
            SafetensorsFile.Write(path, entries, metadata);
        }

        private static void WriteTensor(Stream stream, Tensor tensor)
        {
            if (tensor.numel() == 0) return;
            using var scope = NewDisposeScope();
            var cpu = tensor.detach().cpu().contiguous();
            var flat = cpu.reshape(-1);
            long count = flat.numel();
            long perChunk = Math.Max(1, ChunkBytes / cpu.element_size());
            for (long start = 0; start < count; start += perChunk)
            {
                var part = flat.narrow(0, start, Math.Min(perChunk, count - start));
                stream.Write(part.bytes);
                part.Dispose();
            }
        }

        /// <summary>Reads one tensor's bytes from <paramref name="stream"/> into a new CPU tensor of its stored dtype.</summary>
        internal static Tensor ReadTensor(Stream stream, SafetensorsHeader header, SafetensorsTensorInfo info)
        {
            if (!BitConverter.IsLittleEndian)
                throw new PlatformNotSupportedException("Reading safetensors requires a little-endian machine.");
            var type = ToScalarType(info.DType);
            int size = SafetensorsFile.GetDType(info.DType).Size;
            Tensor tensor;
            try
            {
                tensor = torch.empty(info.Shape, type, torch.CPU);
            }
            catch (ExternalException e) // libtorch's allocator: the size passed the checks but is not available now
            {
                throw new SafetensorsException(header.Path, info.Name,
                    $"Cannot load safetensors file '{header.Path}': allocating {info.ByteLength} bytes for tensor '{info.Name}' ({info.DType} {info.ShapeText}) failed: {e.Message}", e);
            }
            try
            {
                long count = info.ElementCount;
                if (count == 0) return tensor;
                using var flat = tensor.view(-1);
                long perChunk = Math.Max(1, ChunkBytes / size);
                for (long start = 0; start < count; start += perChunk)
                {
                    using var part = flat.narrow(0, start, Math.Min(perChunk, count - start));
                    SafetensorsFile.ReadTensorData(stream, header, info, start * size, part.bytes);
                }
                return tensor;
            }
            catch
            {
                tensor.Dispose();
                throw;
            }
        }
    }
}
