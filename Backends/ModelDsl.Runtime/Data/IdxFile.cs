using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;

namespace ModelDsl.Data
{
    /// <summary>An IDX array of unsigned bytes: its shape (the first dimension counts the items) and its data, row-major.</summary>
    public sealed class IdxArray
    {
        internal IdxArray(int[] shape, byte[] data)
        {
            Shape = shape;
            Data = data;
        }

        /// <summary>The dimensions, outermost first: [images, rows, columns] for images, [labels] for labels.</summary>
        public int[] Shape { get; }

        /// <summary>The values, row-major (the last dimension varies fastest).</summary>
        public byte[] Data { get; }

        /// <summary>Items: the first dimension.</summary>
        public int Count => Shape[0];
    }

    /// <summary>A file that is not a valid IDX array; the message names the file and what is wrong.</summary>
    public sealed class IdxFormatException : Exception
    {
        public IdxFormatException(string message, Exception? inner = null) : base(message, inner) { }
    }

    /// <summary>
    /// Reads IDX files, the format of LeCun's MNIST and of Fashion-MNIST: a big-endian header of two zero bytes, an element
    /// type, the number of dimensions and one unsigned 32-bit size per dimension, then the data row-major. Files may be
    /// gzip-compressed, as they are distributed (recognised by gzip's magic bytes). Only unsigned bytes (type 0x08) are
    /// read: the element type of every image and label file of both data sets.
    /// </summary>
    public static class IdxFile
    {
        /// <summary>Element type 0x08: unsigned bytes.</summary>
        public const byte UnsignedByte = 0x08;

        /// <summary>The largest array read, in bytes (1 GiB): a corrupt header must not ask for an absurd allocation.</summary>
        public const long MaxBytes = 1L << 30;

        /// <summary>Reads the IDX file at <paramref name="path"/>, gzip-compressed or not.</summary>
        /// <exception cref="IdxFormatException">The file is not a valid IDX array of unsigned bytes.</exception>
        public static IdxArray Read(string path)
        {
            ArgumentNullException.ThrowIfNull(path);
            using var stream = File.OpenRead(path);
            return Read(stream, Path.GetFileName(path));
        }

        /// <summary>Reads an IDX array from <paramref name="stream"/>, gzip-compressed or not; <paramref name="name"/> names it in errors.</summary>
        /// <exception cref="IdxFormatException">The data are not a valid IDX array of unsigned bytes.</exception>
        public static IdxArray Read(Stream stream, string name)
        {
            ArgumentNullException.ThrowIfNull(stream);
            ArgumentNullException.ThrowIfNull(name);
            byte[] bytes;
            try
            {
                using var buffer = new MemoryStream();
                stream.CopyTo(buffer);
                bytes = buffer.ToArray();
                if (bytes.Length >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B)
                {
                    using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
                    using var plain = new MemoryStream();
                    gzip.CopyTo(plain);
                    bytes = plain.ToArray();
                }
            }
            catch (InvalidDataException e)
            {
                throw new IdxFormatException($"IDX file '{name}': the gzip data are corrupt ({e.Message}).", e);
            }
            return Parse(bytes, name);
        }

        private static IdxArray Parse(byte[] bytes, string name)
        {
            if (bytes.Length < 4)
                throw new IdxFormatException($"IDX file '{name}' has {bytes.Length} byte(s); the header alone needs at least 4.");
            if (bytes[0] != 0 || bytes[1] != 0)
                throw new IdxFormatException($"IDX file '{name}' starts with 0x{bytes[0]:X2} 0x{bytes[1]:X2}; an IDX file starts with two zero bytes.");
            byte type = bytes[2];
            if (type != UnsignedByte)
                throw new IdxFormatException($"IDX file '{name}' holds elements of type 0x{type:X2} ({TypeName(type)}); only unsigned bytes (0x08) are read.");
            int rank = bytes[3];
            if (rank == 0)
                throw new IdxFormatException($"IDX file '{name}' declares 0 dimensions; an array has at least one.");
            int header = 4 + 4 * rank;
            if (bytes.Length < header)
                throw new IdxFormatException($"IDX file '{name}' has {bytes.Length} bytes, fewer than its header of {rank} dimension(s) needs ({header}).");

            var shape = new int[rank];
            long elements = 1;
            for (int d = 0; d < rank; d++)
            {
                uint size = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(4 + 4 * d));
                elements *= size;
                if (size > int.MaxValue || elements > MaxBytes)
                    throw new IdxFormatException($"IDX file '{name}': dimension {d} is {size}, which makes the array larger than the {MaxBytes} bytes this reader accepts.");
                shape[d] = (int)size;
            }
            long data = bytes.Length - header;
            if (data != elements)
                throw new IdxFormatException(
                    $"IDX file '{name}' has {data} bytes of data; its shape [{string.Join(", ", shape)}] needs {elements}" +
                    (data < elements ? " (the file is truncated)." : $" ({data - elements} bytes follow the array)."));
            return new IdxArray(shape, bytes.AsSpan(header).ToArray());
        }

        private static string TypeName(byte type) => type switch
        {
            0x09 => "signed bytes",
            0x0B => "int16",
            0x0C => "int32",
            0x0D => "float32",
            0x0E => "float64",
            _ => "no IDX type",
        };
    }
}
