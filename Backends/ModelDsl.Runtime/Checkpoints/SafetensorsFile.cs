using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;

namespace ModelDsl.Checkpoints
{
    /// <summary>
    /// The safetensors format (Hugging Face), independent of any tensor library: an 8-byte little-endian header length
    /// N, N bytes of UTF-8 JSON describing each tensor (dtype, shape, data_offsets relative to the data buffer) plus
    /// optional "__metadata__", then the little-endian, row-major data buffer, which the tensors must cover without
    /// holes or overlaps. <see cref="ReadHeader(string)"/> validates all of it; <see cref="ReadTensorData"/> reads a
    /// tensor's bytes; <see cref="Write"/> writes a file atomically. Backends convert between these bytes and their
    /// tensors (TorchSharp: <c>ModelDsl.TorchSharp.Safetensors</c> and <c>ModuleWeights</c>).
    /// </summary>
    /// <remarks>
    /// What <see cref="ReadHeader(string)"/> accepts; anything else is a <see cref="SafetensorsException"/> naming the file
    /// and, where one is to blame, the tensor (a name that is not valid text is shown by its raw bytes, e.g. <c>w\xE5ight</c>):
    /// <list type="bullet">
    /// <item>A header of at most <see cref="MaxHeaderLength"/> bytes that starts with '{' and is one JSON object in valid
    /// UTF-8, with no escaped unpaired surrogate (<c>"\ud800"</c>), at most 16 levels deep, followed only by whitespace
    /// (the writers' padding).</item>
    /// <item>Each tensor entry (any key but "__metadata__", unique, not empty) is an object with exactly one "dtype" (a
    /// supported dtype string), one "shape" (an array of integers in [0, 2^63)) and one "data_offsets" (two integers
    /// [begin, end] in [0, 2^63)). A repeated field is an error, as in the reference implementation; other fields are
    /// ignored, as in the reference implementation (its TensorInfo does not deny unknown fields), but must be valid text.</item>
    /// <item>Size limit: the product of the shape's non-zero dimensions times the element size must fit in a signed
    /// 64-bit integer, even when a dimension is 0 and the tensor has no elements, because strided libraries compute
    /// strides and byte offsets from it (libtorch fails with "Stride calculation overflowed"). end - begin must equal
    /// the element count times the element size.</item>
    /// <item>The tensors tile the data buffer exactly: no holes, no overlaps, nothing after the last one.</item>
    /// <item>"__metadata__", if present, is null or an object of unique string keys and string values.</item>
    /// </list>
    /// A valid header can still claim more data than can be loaded (a sparse file holds a terabyte in no disk space):
    /// loaders call <see cref="CheckFitsInMemory"/>, which refuses what exceeds <see cref="MemoryLimitBytes"/>, before
    /// allocating anything.
    /// </remarks>
    public static class SafetensorsFile
    {
        /// <summary>Largest header accepted (the reference implementation's limit).</summary>
        public const long MaxHeaderLength = 100_000_000;

        /// <summary>The reserved header key of the free-form string metadata.</summary>
        public const string MetadataKey = "__metadata__";

        private static readonly Dictionary<string, SafetensorsDType> DTypes = new SafetensorsDType[]
        {
            new("F64", 8, true),
            new("F32", 4, true),
            new("F16", 2, true),
            new("BF16", 2, true),
            new("I64", 8, false),
            new("I32", 4, false),
            new("I16", 2, false),
            new("I8", 1, false),
            new("U8", 1, false),
            new("BOOL", 1, false),
        }.ToDictionary(d => d.Name, StringComparer.Ordinal);

        /// <summary>The safetensors dtype strings this implementation reads and writes.</summary>
        public static IReadOnlyCollection<string> SupportedDTypes => DTypes.Keys;

        /// <summary>Looks up a dtype string ("F32", "BF16", ...); false for one this implementation does not support.</summary>
        public static bool TryGetDType(string name, out SafetensorsDType dtype)
        {
            ArgumentNullException.ThrowIfNull(name);
            return DTypes.TryGetValue(name, out dtype);
        }

        /// <summary>The element size and kind of a dtype string.</summary>
        /// <exception cref="ArgumentException">Unknown dtype.</exception>
        public static SafetensorsDType GetDType(string name)
            => TryGetDType(name, out var d) ? d
                : throw new ArgumentException($"Unknown safetensors dtype '{name}' (supported: {string.Join(", ", DTypes.Keys)}).", nameof(name));

        /// <summary>Reads and validates the header of the safetensors file at <paramref name="path"/>.</summary>
        /// <exception cref="SafetensorsException">The file is not a valid safetensors file.</exception>
        public static SafetensorsHeader ReadHeader(string path)
        {
            ArgumentNullException.ThrowIfNull(path);
            using var stream = OpenRead(path);
            return ReadHeader(stream, path);
        }

        /// <summary>
        /// Reads <paramref name="destination"/>.Length bytes of tensor <paramref name="info"/>, starting
        /// <paramref name="offset"/> bytes into its data, from <paramref name="stream"/> (the file the header was read
        /// from). BOOL elements are checked to be 0 or 1. Callers read a large tensor in chunks.
        /// </summary>
        /// <exception cref="SafetensorsException">The file ended early (truncated after the header was read) or holds an invalid BOOL byte; names the tensor.</exception>
        /// <exception cref="ArgumentOutOfRangeException">The range is not inside the tensor.</exception>
        public static void ReadTensorData(Stream stream, SafetensorsHeader header, SafetensorsTensorInfo info, long offset, Span<byte> destination)
        {
            ArgumentNullException.ThrowIfNull(stream);
            ArgumentNullException.ThrowIfNull(header);
            ArgumentNullException.ThrowIfNull(info);
            if (offset < 0 || offset > info.ByteLength || destination.Length > info.ByteLength - offset)
                throw new ArgumentOutOfRangeException(nameof(offset), offset,
                    $"Bytes [{offset}, {offset + destination.Length}) are not inside tensor '{info.Name}' ({info.ByteLength} bytes).");
            if (destination.IsEmpty) return;
            try
            {
                stream.Position = header.DataStart + info.Begin + offset;
                stream.ReadExactly(destination);
            }
            catch (EndOfStreamException e)
            {
                throw Bad(header.Path, info.Name, "the file ended while reading the tensor's bytes (was it truncated after the header was read?)", e);
            }
            catch (IOException e)
            {
                throw Bad(header.Path, info.Name, $"reading the tensor's bytes failed: {e.Message}", e);
            }
            if (info.DType == "BOOL")
                foreach (byte b in destination)
                    if (b > 1) throw Bad(header.Path, info.Name, $"a BOOL element holds the byte {b}; only 0 and 1 are valid");
        }

        /// <summary>
        /// The most bytes a load may allocate at once: the memory .NET reports as available to this process
        /// (<see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>: the machine's physical memory, or the container's limit).
        /// A header can claim any size (a sparse file takes no disk space for a terabyte of data), so loaders check the
        /// tensors they are about to allocate against this before allocating anything (<see cref="CheckFitsInMemory"/>).
        /// </summary>
        public static long MemoryLimitBytes
            => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes is > 0 and var bytes ? bytes : long.MaxValue;

        /// <summary>
        /// Refuses, before anything is allocated, to load <paramref name="tensors"/> of the file at once when one of them,
        /// or all of them together, need more than <see cref="MemoryLimitBytes"/>. Allocation may still fail below that
        /// limit (other memory is in use); that is the allocator's error to report.
        /// </summary>
        /// <exception cref="SafetensorsException">The tensors cannot fit; names the file and the largest tensor.</exception>
        public static void CheckFitsInMemory(SafetensorsHeader header, IEnumerable<SafetensorsTensorInfo> tensors)
        {
            ArgumentNullException.ThrowIfNull(header);
            ArgumentNullException.ThrowIfNull(tensors);
            long limit = MemoryLimitBytes;
            long total = 0;
            int count = 0;
            SafetensorsTensorInfo? largest = null;
            foreach (var t in tensors)
            {
                count++;
                total = total > long.MaxValue - t.ByteLength ? long.MaxValue : total + t.ByteLength;
                if (largest is null || t.ByteLength > largest.ByteLength) largest = t;
            }
            if (largest is null || total <= limit) return;
            string what = largest.ByteLength > limit
                ? $"tensor '{largest.Name}' ({largest.DType} {largest.ShapeText}) needs {Bytes(largest.ByteLength)}"
                : $"its {count} tensors need {Bytes(total)} at once (the largest, '{largest.Name}', {Bytes(largest.ByteLength)})";
            throw new SafetensorsException(header.Path, largest.Name,
                $"Cannot load safetensors file '{header.Path}': {what}, more than the {Bytes(limit)} of memory this process can use.");
        }

        private static string Bytes(long bytes)
        {
            string[] units = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
            double value = bytes;
            int unit = -1;
            while (value >= 1024 && unit < units.Length - 1) { value /= 1024; unit++; }
            return unit < 0
                ? string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes")
                : string.Create(CultureInfo.InvariantCulture, $"{bytes:N0} bytes ({value:0.#} {units[unit]})");
        }

        /// <summary>
        /// Checks that the file open as <paramref name="stream"/> still has the length its header was read with. Call it
        /// after reading tensors and before using them: a file that shrank or grew meanwhile is being written by another
        /// program, and bytes read from it may mix two versions.
        /// </summary>
        /// <exception cref="SafetensorsException">The length changed.</exception>
        public static void CheckUnchanged(Stream stream, SafetensorsHeader header)
        {
            ArgumentNullException.ThrowIfNull(stream);
            ArgumentNullException.ThrowIfNull(header);
            long length;
            try { length = stream.Length; }
            catch (IOException e) { throw Bad(header.Path, null, $"its length cannot be read any more: {e.Message}", e); }
            if (length != header.FileLength)
                throw Bad(header.Path, null,
                    $"the file changed while it was read ({header.FileLength} bytes when the header was read, {length} now): is another program writing it?");
        }

        /// <summary>
        /// Writes <paramref name="tensors"/> (in ordinal name order, so the file is deterministic) and optional metadata
        /// to <paramref name="path"/>, atomically: the data goes to a temporary file in the same folder, which then
        /// replaces <paramref name="path"/>; a failure leaves no partial file. The header is padded with spaces so the
        /// data buffer starts 8-byte aligned.
        /// </summary>
        /// <remarks>
        /// The temporary file is <c>.{file name}.{32 hex digits}.tmp</c> beside <paramref name="path"/> (hidden on Unix).
        /// An exception removes it, but an interrupted save (the process killed, a power cut) leaves it behind, up to the
        /// size of the checkpoint; <paramref name="path"/> is then still the previous file (or absent), never a mix. The
        /// next save to the same <paramref name="path"/> deletes such leftovers first: only files named exactly like that
        /// for this file name, and only those no save in progress holds open (a save keeps its temporary file open, and so
        /// locked, until it has been renamed; on Unix these are .NET's advisory locks, which are not taken on NFS/SMB or
        /// when DOTNET_SYSTEM_IO_DISABLEFILELOCKING is set, where two concurrent saves of one file must be avoided).
        /// Leftovers of a target that is never saved again stay until removed by hand.
        /// </remarks>
        /// <exception cref="ArgumentException">A name is empty, reserved or repeated, a dtype is unknown or a dimension negative.</exception>
        /// <exception cref="InvalidOperationException">An entry's callback wrote a different number of bytes than its dtype and shape need.</exception>
        /// <exception cref="IOException">The file cannot be written (e.g. the folder does not exist).</exception>
        public static void Write(string path, IEnumerable<SafetensorsWriteEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
        {
            ArgumentNullException.ThrowIfNull(path);
            ArgumentNullException.ThrowIfNull(tensors);
            if (!BitConverter.IsLittleEndian)
                throw new PlatformNotSupportedException("Writing safetensors requires a little-endian machine.");

            var entries = new List<(SafetensorsWriteEntry Entry, long Bytes)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var entry in tensors)
            {
                if (entry is null)
                    throw new ArgumentException($"Cannot write '{path}': an entry is null.", nameof(tensors));
                string name = entry.Name;
                if (string.IsNullOrEmpty(name))
                    throw new ArgumentException($"Cannot write '{path}': a tensor has an empty name.", nameof(tensors));
                if (name == MetadataKey)
                    throw new ArgumentException($"Cannot write '{path}': '{MetadataKey}' is reserved and cannot name a tensor.", nameof(tensors));
                if (!seen.Add(name))
                    throw new ArgumentException($"Cannot write '{path}': the tensor name '{name}' appears twice.", nameof(tensors));
                if (entry.DType is null || !DTypes.TryGetValue(entry.DType, out var dtype))
                    throw new ArgumentException($"Cannot write '{path}': tensor '{name}': unknown safetensors dtype '{entry.DType}' (supported: {string.Join(", ", DTypes.Keys)}).", nameof(tensors));
                if (entry.Shape is null || entry.WriteData is null)
                    throw new ArgumentException($"Cannot write '{path}': tensor '{name}' has no shape or no data callback.", nameof(tensors));
                long count = 1;
                foreach (long d in entry.Shape)
                {
                    if (d < 0)
                        throw new ArgumentException($"Cannot write '{path}': tensor '{name}' has a negative dimension in shape {SafetensorsHeader.FormatShape(entry.Shape)}.", nameof(tensors));
                    count = checked(count * d);
                }
                entries.Add((entry, checked(count * dtype.Size)));
            }
            entries.Sort((a, b) => string.CompareOrdinal(a.Entry.Name, b.Entry.Name));

            byte[] header = BuildHeader(entries.Select(e => (e.Entry.Name, e.Entry.DType, e.Entry.Shape, e.Bytes)), metadata);

            string full = Path.GetFullPath(path);
            string folder = Path.GetDirectoryName(full) ?? ".";
            string fileName = Path.GetFileName(full);
            RemoveStaleTemporaryFiles(folder, fileName);
            string temp = Path.Combine(folder, TemporaryPrefix(fileName) + Guid.NewGuid().ToString("N") + TemporarySuffix);
            FileStream? stream = null;
            try
            {
                // FileShare.Delete: the file can be renamed while open (Windows), and .NET takes a shared advisory lock on
                // Unix, so a concurrent save's RemoveStaleTemporaryFiles (an exclusive lock) leaves this file alone.
                stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.Delete, 1 << 16);
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                stream.Write(length);
                stream.Write(header);
                foreach (var (entry, bytes) in entries)
                {
                    long before = stream.Position;
                    entry.WriteData(stream);
                    long written = stream.Position - before;
                    if (written != bytes)
                        throw new InvalidOperationException(
                            $"Cannot write '{path}': the data callback of tensor '{entry.Name}' wrote {written} bytes; {entry.DType} {SafetensorsHeader.FormatShape(entry.Shape)} needs {bytes}.");
                }
                stream.Flush(flushToDisk: true);
                File.Move(temp, full, overwrite: true); // still open, so still locked until it has its final name
            }
            finally
            {
                stream?.Dispose();
                try { if (File.Exists(temp)) File.Delete(temp); }
                catch (IOException) { /* best effort: the original exception matters more */ }
            }
        }

        private const string TemporarySuffix = ".tmp";

        /// <summary>Temporary files of a save of <paramref name="fileName"/> are named <c>.{fileName}.{32 hex digits}.tmp</c>.</summary>
        private static string TemporaryPrefix(string fileName) => "." + fileName + ".";

        /// <summary>
        /// Deletes the temporary files that interrupted saves of <paramref name="fileName"/> left in
        /// <paramref name="folder"/>: exactly the names <c>.{fileName}.{Guid "N"}.tmp</c>, and only those that no live save
        /// holds (each is opened exclusively with delete-on-close; a file still open in a save fails to open and stays).
        /// Best effort: a file that cannot be removed is left for a later save.
        /// </summary>
        private static void RemoveStaleTemporaryFiles(string folder, string fileName)
        {
            string prefix = TemporaryPrefix(fileName);
            List<string> stale;
            try
            {
                stale = Directory.EnumerateFiles(folder)
                    .Where(file => IsTemporaryName(Path.GetFileName(file), prefix))
                    .ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return; // the save itself will report a folder it cannot use
            }
            foreach (var file in stale)
            {
                try
                {
                    using var claim = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // In use by a save in progress (locked), already gone, or not ours to delete: leave it.
                }
            }
        }

        private static bool IsTemporaryName(string name, string prefix)
        {
            if (name.Length != prefix.Length + 32 + TemporarySuffix.Length
                || !name.StartsWith(prefix, StringComparison.Ordinal)
                || !name.EndsWith(TemporarySuffix, StringComparison.Ordinal))
                return false;
            foreach (char c in name.AsSpan(prefix.Length, 32))
                if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)) return false;
            return true;
        }

        private static byte[] BuildHeader(IEnumerable<(string Name, string DType, IReadOnlyList<long> Shape, long Bytes)> entries, IReadOnlyDictionary<string, string>? metadata)
        {
            var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                if (metadata is { Count: > 0 })
                {
                    json.WriteStartObject(MetadataKey);
                    foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                        json.WriteString(key, value ?? throw new ArgumentException($"Metadata entry '{key}' is null.", nameof(metadata)));
                    json.WriteEndObject();
                }
                long offset = 0;
                foreach (var (name, dtype, shape, bytes) in entries)
                {
                    json.WriteStartObject(name);
                    json.WriteString("dtype", dtype);
                    json.WriteStartArray("shape");
                    foreach (var d in shape) json.WriteNumberValue(d);
                    json.WriteEndArray();
                    json.WriteStartArray("data_offsets");
                    json.WriteNumberValue(offset);
                    json.WriteNumberValue(offset + bytes);
                    json.WriteEndArray();
                    json.WriteEndObject();
                    offset += bytes;
                }
                json.WriteEndObject();
            }
            // Pad with spaces so that the data buffer starts 8-byte aligned (8 + N is a multiple of 8).
            int pad = (int)((8 - buffer.Length % 8) % 8);
            for (int i = 0; i < pad; i++) buffer.WriteByte((byte)' ');
            return buffer.ToArray();
        }

        /// <summary>Opens a safetensors file for reading (shared read access).</summary>
        /// <exception cref="SafetensorsException">The file cannot be opened; names it.</exception>
        public static FileStream OpenRead(string path)
        {
            ArgumentNullException.ThrowIfNull(path);
            try
            {
                return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new SafetensorsException(path, null, $"Cannot open safetensors file '{path}': {e.Message}", e);
            }
        }

        /// <summary>
        /// Reads and validates the header of the safetensors file open as <paramref name="stream"/> (seekable; read from
        /// its start). <paramref name="path"/> names the file in errors and in <see cref="SafetensorsHeader.Path"/>.
        /// </summary>
        /// <exception cref="SafetensorsException">The file is not a valid safetensors file.</exception>
        public static SafetensorsHeader ReadHeader(Stream stream, string path)
        {
            ArgumentNullException.ThrowIfNull(stream);
            ArgumentNullException.ThrowIfNull(path);
            if (!stream.CanSeek || !stream.CanRead)
                throw new ArgumentException("Reading a safetensors header needs a readable, seekable stream.", nameof(stream));
            long fileLength = stream.Length;
            if (fileLength < 8)
                throw Bad(path, null, $"the file is {fileLength} bytes long; a safetensors file starts with an 8-byte header length");
            Span<byte> prefix = stackalloc byte[8];
            try
            {
                stream.Position = 0;
                stream.ReadExactly(prefix);
            }
            catch (IOException e) // EndOfStreamException included: the file shrank meanwhile
            {
                throw Bad(path, null, $"reading the header length failed: {e.Message}", e);
            }
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (n > MaxHeaderLength)
                throw Bad(path, null, $"the header length {n} exceeds the limit of {MaxHeaderLength} bytes (corrupt file?)");
            if (n > (ulong)(fileLength - 8))
                throw Bad(path, null, $"the header length {n} is larger than the rest of the file ({fileLength - 8} bytes): the file is truncated or corrupt");
            if (n < 2)
                throw Bad(path, null, $"the header length {n} is too small to hold a JSON object");
            var json = new byte[n];
            try { stream.ReadExactly(json); }
            catch (IOException e)
            {
                throw Bad(path, null, $"reading the {n}-byte header failed: {e.Message}", e);
            }
            if (json[0] != (byte)'{')
                throw Bad(path, null, "the header does not start with '{'");

            long dataLength = fileLength - 8 - (long)n;
            var (entries, metadata) = SafetensorsHeaderParser.Parse(path, json);
            var tensors = new Dictionary<string, SafetensorsTensorInfo>(entries.Count, StringComparer.Ordinal);
            foreach (var entry in entries)
                tensors.Add(entry.Name, CheckTensorInfo(path, entry, dataLength));
            CheckCoverage(path, tensors.Values, dataLength);
            return new SafetensorsHeader(path, (long)n, fileLength, tensors, metadata);
        }

        private static SafetensorsTensorInfo CheckTensorInfo(string path, SafetensorsHeaderParser.RawEntry entry, long dataLength)
        {
            string name = entry.Name;
            if (entry.DType is not { } dtype)
                throw Bad(path, name, "'dtype' is missing or not a string");
            if (!DTypes.TryGetValue(dtype, out var dt))
                throw Bad(path, name, $"unknown dtype '{dtype}' (supported: {string.Join(", ", DTypes.Keys)})");

            if (entry.Shape is not { } shape)
                throw Bad(path, name, "'shape' is missing or not an array");
            // Strided libraries compute strides and byte offsets as products of the dimensions even when one of them is
            // 0 (libtorch: "Stride calculation overflowed"), so the non-zero dimensions times the element size must fit
            // in a long. This also bounds the element count and the byte length.
            long span = dt.Size;
            bool empty = false;
            foreach (long dim in shape)
            {
                empty |= dim == 0;
                try { span = checked(span * Math.Max(dim, 1)); }
                catch (OverflowException)
                {
                    throw Bad(path, name, $"shape {SafetensorsHeader.FormatShape(shape)} is too large: its non-zero dimensions times the " +
                                          $"element size ({dt.Size} bytes) overflow a signed 64-bit integer, so its strides cannot be computed" +
                                          (empty ? " (even though it has no elements)" : ""));
                }
            }
            long expected = empty ? 0 : span;
            long numel = expected / dt.Size;

            if (entry.Offsets is not { } offsets)
                throw Bad(path, name, "'data_offsets' is missing or not an array [begin, end]");
            long begin = offsets[0], end = offsets[1];
            if (end < begin)
                throw Bad(path, name, $"data_offsets [{begin}, {end}] end before they begin");
            if (end > dataLength)
                throw Bad(path, name, $"data_offsets [{begin}, {end}] run past the end of the data buffer ({dataLength} bytes)");
            if (end - begin != expected)
                throw Bad(path, name, $"data_offsets [{begin}, {end}] hold {end - begin} bytes, but {dtype} {SafetensorsHeader.FormatShape(shape)} needs {numel} x {dt.Size} = {expected}");
            return new SafetensorsTensorInfo(name, dtype, shape, begin, end);
        }

        /// <summary>The tensors must tile the data buffer exactly: no holes, no overlaps, nothing after the last.</summary>
        private static void CheckCoverage(string path, IEnumerable<SafetensorsTensorInfo> tensors, long dataLength)
        {
            long position = 0;
            SafetensorsTensorInfo? previous = null;
            foreach (var t in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
            {
                if (t.Begin < position)
                    throw Bad(path, t.Name, $"its bytes [{t.Begin}, {t.End}) overlap those of '{previous!.Name}' [{previous.Begin}, {previous.End})");
                if (t.Begin > position)
                    throw Bad(path, t.Name, $"there is a hole in the data buffer: bytes [{position}, {t.Begin}) before it belong to no tensor");
                position = t.End;
                previous = t;
            }
            if (position != dataLength)
                throw Bad(path, null, $"the data buffer holds {dataLength} bytes but the tensors cover only the first {position}");
        }

        private static SafetensorsException Bad(string path, string? tensor, string what, Exception? inner = null)
            => SafetensorsHeaderParser.Bad(path, tensor, what, inner);
    }
}
