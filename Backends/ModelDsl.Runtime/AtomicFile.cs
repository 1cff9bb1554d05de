using System;
using System.IO;
using System.Text;

namespace ModelDsl
{
    /// <summary>
    /// Writes a file under a temporary name beside it and renames it into place, so a reader (or a crash) never sees a
    /// half-written file; the temporary file is removed if writing fails.
    /// </summary>
    public static class AtomicFile
    {
        /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte-order mark.</summary>
        public static void WriteAllText(string path, string text)
            => Write(path, temp => File.WriteAllText(temp, text, new UTF8Encoding(false)));

        /// <summary>
        /// Lets <paramref name="write"/> create the file at the temporary path it is given, then moves it to
        /// <paramref name="path"/>; the temporary name ends in <paramref name="extension"/> for writers that go by it.
        /// </summary>
        public static void Write(string path, Action<string> write, string extension = "")
        {
            ArgumentNullException.ThrowIfNull(path);
            ArgumentNullException.ThrowIfNull(write);
            string full = Path.GetFullPath(path);
            string temp = full + ".tmp-" + Guid.NewGuid().ToString("N") + extension;
            try
            {
                write(temp);
                File.Move(temp, full, overwrite: true);
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }
    }
}
