using System;
using ILGPU;

namespace ModelDsl.Ilgpu
{
    /// <summary>Argument checks of kernel launchers: a wrong length must fail here, by name, not read out of bounds on the device.</summary>
    internal static class Check
    {
        public static void SameLength(string kernel, ArrayView<float> output, params (string Name, ArrayView<float> View)[] inputs)
        {
            foreach (var (name, view) in inputs)
                if (view.Length != output.Length)
                    throw new ArgumentException($"{kernel}: {name} has {view.Length} elements, the output {output.Length}.", name);
        }

        public static void Length<T>(string kernel, string name, ArrayView<T> view, long expected) where T : unmanaged
        {
            if (view.Length < expected)
                throw new ArgumentException($"{kernel}: {name} has {view.Length} elements, at least {expected} needed.", name);
        }

        public static void Positive(string kernel, string name, long value)
        {
            if (value <= 0) throw new ArgumentOutOfRangeException(name, value, $"{kernel}: {name} must be positive.");
        }

        /// <summary>The extent of a one-thread-per-element launch over <paramref name="view"/> (ILGPU indexes launches with int).</summary>
        public static int IndexRange<T>(string kernel, ArrayView<T> view) where T : unmanaged
            => view.Length <= int.MaxValue
                ? (int)view.Length
                : throw new ArgumentException($"{kernel}: {view.Length} elements are more than one launch can index ({int.MaxValue}).");

        public static void NonNegative(string kernel, string name, float value)
        {
            if (!(value >= 0f) || float.IsInfinity(value))
                throw new ArgumentOutOfRangeException(name, value, $"{kernel}: {name} must be a finite number >= 0.");
        }

        /// <summary>Returns <paramref name="elements"/> when 32-bit indices reach every element (kernels index with int, as CUDA code does).</summary>
        public static long Indexable(string kernel, string name, long elements)
        {
            if (elements > int.MaxValue)
                throw new ArgumentException($"{kernel}: {name} would span {elements} elements; the kernels index with 32-bit integers (at most {int.MaxValue}).", name);
            return elements;
        }
    }
}
