using System;
using System.Collections.Concurrent;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// Every kernel of the backend, loaded for one accelerator on first use. Conventions, shared by all launchers:
    /// tensors are float32, row-major and dense unless a row stride is passed; "rows" are the leading dimensions
    /// flattened (Batch x Time); backward launchers ACCUMULATE into input and parameter gradients (+=), so a value
    /// read by two ops gets the sum of both gradients and the caller zeroes gradient buffers when a step begins;
    /// no kernel uses floating-point atomics, so a step is deterministic on a given device.
    /// </summary>
    public sealed partial class Kernels
    {
        private readonly ConcurrentDictionary<string, Delegate> loaded = new();

        internal Kernels(Accelerator accelerator) => Accelerator = accelerator;

        public Accelerator Accelerator { get; }

        /// <summary>Loads a kernel once per accelerator (compiling takes tens of milliseconds to seconds).</summary>
        private T Load<T>(string name, Func<Accelerator, T> load) where T : Delegate
            => (T)loaded.GetOrAdd(name, _ => load(Accelerator));

        /// <summary>Groups needed to cover <paramref name="items"/> with <paramref name="groupSize"/> threads each.</summary>
        internal static int GroupsFor(long items, int groupSize) => (int)Math.Max(1, (items + groupSize - 1) / groupSize);
    }
}
