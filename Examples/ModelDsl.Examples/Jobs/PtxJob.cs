using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text;
using ModelDsl.Ilgpu;

namespace ModelDsl.Examples.Jobs
{
    /// <summary>
    /// Writes every ILGPU kernel's PTX, as the CUDA accelerator would compile it, with a manifest of launch facts ptxas
    /// cannot see (group size, dynamic shared memory). scripts/ptxas-report.sh assembles the files for an H100.
    /// </summary>
    internal static class PtxJob
    {
        public const string Usage = """
              ptx [--out DIR]            compile every ILGPU kernel to PTX (sm_80; no GPU needed) into DIR/ptx (default ./out),
                                         one .ptx per kernel and kernels.tsv; scripts/ptxas-report.sh assembles them for sm_90
            """;

        public static int Run(Options options)
        {
            var dir = Directory.CreateDirectory(Path.Combine(options.Get("--out", "out"), "ptx")).FullName;
            var methods = PtxCompiler.KernelMethods().ToList();
            var kernels = PtxCompiler.Compile(methods);
            var manifest = new StringBuilder("kernel\tgroup_size\tdynamic_shared_bytes\n");
            long bytes = 0;
            foreach (var (method, kernel) in methods.Zip(kernels))
            {
                File.WriteAllText(Path.Combine(dir, kernel.Name + ".ptx"), kernel.Assembly);
                bytes += kernel.Assembly.Length;
                int dynamicShared = method.GetCustomAttribute<KernelAttribute>()!.DynamicSharedMemoryBytes;
                manifest.Append(CultureInfo.InvariantCulture, $"{kernel.Name}\t{kernel.GroupSize}\t{dynamicShared}\n");
            }
            File.WriteAllText(Path.Combine(dir, "kernels.tsv"), manifest.ToString());
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Compiled {0} kernels to PTX (sm_80, {1:N0} KB) into {2}; scripts/ptxas-report.sh assembles them for sm_90.",
                kernels.Count, bytes / 1024.0, dir));
            return 0;
        }
    }
}
