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
            string temp = Path.Combine(directory ?? ".", $".{Path.GetFileNameWithoutExtension(full)}.{Guid.NewGuid():N}.png");
            try
            {
                plot.SavePng(temp, width, height);
                File.Move(temp, full, overwrite: true);
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }
    }
}
