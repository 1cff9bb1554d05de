using System;
using System.IO;

namespace ModelDsl.Examples
{
    /// <summary>The training text, embedded in the program so the main job needs no files or downloads.</summary>
    internal static class Corpus
    {
        public static string KingJamesBible()
        {
            using var stream = typeof(Corpus).Assembly.GetManifestResourceStream("ModelDsl.Examples.Data.kjv.txt")
                ?? throw new InvalidOperationException("The embedded corpus ModelDsl.Examples.Data.kjv.txt is missing from the build.");
            using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
            return reader.ReadToEnd();
        }
    }
}
