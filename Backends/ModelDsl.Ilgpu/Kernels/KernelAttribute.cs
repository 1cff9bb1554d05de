using System;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// Marks a kernel entry point. The PTX test compiles every marked method for CUDA, and scripts/ptxas-report
    /// assembles the result for sm_90; <see cref="GroupSize"/> is the explicit group size the launcher uses
    /// (0: implicitly grouped).
    /// </summary>
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class KernelAttribute : Attribute
    {
        public KernelAttribute(int groupSize = 0) => GroupSize = groupSize;

        public int GroupSize { get; }

        /// <summary>
        /// Bytes of dynamic shared memory per group the launcher requests (its largest request when the size depends on
        /// the model). ptxas counts only static shared memory; scripts/ptxas-report adds this for the occupancy it reports.
        /// </summary>
        public int DynamicSharedMemoryBytes { get; set; }
    }
}
