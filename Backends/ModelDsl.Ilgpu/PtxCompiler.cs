using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelDsl.Ilgpu
{
    /// <summary>One kernel compiled to PTX: its entry point name, group size and assembly text.</summary>
    public sealed record PtxKernel(string Name, int GroupSize, string Assembly);

    /// <summary>
    /// Compiles kernels to PTX with ILGPU's PTX backend and no GPU, as the CUDA accelerator would at load time:
    /// what the CPU accelerator accepts but CUDA does not (a math function without an intrinsic, a managed type)
    /// fails here, in CI. sm_80 is the newest architecture ILGPU 1.5.3 targets; an H100's driver compiles it for sm_90.
    /// </summary>
    public static class PtxCompiler
    {
        /// <summary>Every [Kernel] method of <paramref name="assembly"/> (the backend's own kernels when null).</summary>
        public static IEnumerable<MethodInfo> KernelMethods(Assembly? assembly = null)
            => (assembly ?? typeof(Kernels).Assembly).GetTypes()
                .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                .Where(m => m.GetCustomAttribute<KernelAttribute>() is not null)
                .OrderBy(m => m.DeclaringType!.FullName, StringComparer.Ordinal).ThenBy(m => m.Name, StringComparer.Ordinal);

        /// <summary>Compiles each kernel; a failure names the kernel.</summary>
        public static IReadOnlyList<PtxKernel> Compile(IEnumerable<MethodInfo> kernels)
        {
            using var context = IlgpuDevice.CreateContext(cuda: false);
            using var backend = new PTXBackend(context, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, nvvmAPI: null!); // no NVVM: ILGPU writes the PTX itself
            var result = new List<PtxKernel>();
            foreach (var method in kernels)
            {
                int groupSize = method.GetCustomAttribute<KernelAttribute>()!.GroupSize;
                var entry = groupSize > 0
                    ? EntryPointDescription.FromExplicitlyGroupedKernel(method)
                    : EntryPointDescription.FromImplicitlyGroupedKernel(method);
                try
                {
                    var compiled = (PTXCompiledKernel)backend.Compile(entry, groupSize > 0 ? new KernelSpecialization(groupSize, null) : default);
                    result.Add(new PtxKernel(method.Name, groupSize, compiled.PTXAssembly));
                }
                catch (Exception e)
                {
                    throw new InvalidOperationException($"{method.DeclaringType!.Name}.{method.Name} does not compile to PTX: {e.GetBaseException().Message}", e);
                }
            }
            return result;
        }
    }
}
