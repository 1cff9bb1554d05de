using System;
using System.IO;
using ScottPlot;

namespace ModelDsl.Training
{
    /// <summary>Writes a ScottPlot plot as a PNG atomically: a reader never sees a half-written image.</summary>
    internal static class PngFile
    {
        public static void Save(Plot plot, string path, int width, int height)
        {
            string full = Path.GetFullPath(path);
            string? directory = Path.GetDirectoryName(full);
            if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
            AtomicFile.Write(full, temp => plot.SavePng(temp, width, height), extension: ".png");
        }
    }
}
