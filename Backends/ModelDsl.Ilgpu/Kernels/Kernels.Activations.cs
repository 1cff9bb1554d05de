using System;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace ModelDsl.Ilgpu
{
    /// <summary>The element-wise non-linearities the kernels implement (the generator's ActivationKind).</summary>
    public enum KernelActivation
    {
        /// <summary>Exact GELU: x * Phi(x), Phi the standard normal CDF (erf).</summary>
        Gelu = 0,
        /// <summary>GELU with the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
        GeluTanh = 1,
        /// <summary>max(x, 0).</summary>
        Relu = 2,
        /// <summary>x * sigmoid(x).</summary>
        Silu = 3,
        /// <summary>tanh(x).</summary>
        Tanh = 4,
    }

    /// <summary>How a declared <see cref="Activation"/> runs on the kernels.</summary>
    public static class KernelActivations
    {
        /// <summary>
        /// The kernel function of <paramref name="activation"/> and whether it gates: SwiGlu is silu(gate) * up and GeGlu
        /// gelu_tanh(gate) * up (<see cref="Kernels.GatedForward"/>); the others apply to one input.
        /// </summary>
        public static (KernelActivation Function, bool Gated) Of(Activation activation) => activation switch
        {
            Activation.Gelu => (KernelActivation.Gelu, false),
            Activation.GeluTanh => (KernelActivation.GeluTanh, false),
            Activation.Relu => (KernelActivation.Relu, false),
            Activation.SwiGlu => (KernelActivation.Silu, true),
            Activation.GeGlu => (KernelActivation.GeluTanh, true),
            _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "No kernel for this activation."),
        };
    }

    // Activations and gated units (SwiGLU, GeGLU), forward and backward. Element-wise and memory-bound: auto-grouped,
    // one thread per element, so loads and stores coalesce; the function is a launch argument (a branch every thread
    // takes the same way). Backward passes recompute the function from the saved input instead of storing f(x).
    //
    // Float32 accuracy: erf comes from Numerical Recipes' erfc (Chebyshev fit, relative error < 1.2e-7 on [0, inf))
    // because XMath has no erf; tanh is written as 1 - 2 / (exp(2|x|) + 1) because XMath's PTX tanh,
    // (e^2x - 1) / (e^2x + 1), gives NaN once e^2x overflows (|x| > 44). On CUDA, exp is ex2.approx (2 ulp).
    public sealed partial class Kernels
    {
        /// <summary>output = f(input).</summary>
        public void ActivationForward(KernelActivation f, ArrayView<float> output, ArrayView<float> input)
        {
            const string kernel = nameof(ActivationForward);
            CheckActivation(kernel, f);
            Check.SameLength(kernel, output, (nameof(input), input));
            Load(nameof(ActivationForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(ActivationForwardKernel))
                (Check.IndexRange(kernel, output), output, input, (int)f);
        }

        /// <summary>dInput += dOutput * f'(input).</summary>
        public void ActivationBackward(KernelActivation f, ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<float> input)
        {
            const string kernel = nameof(ActivationBackward);
            CheckActivation(kernel, f);
            Check.SameLength(kernel, dInput, (nameof(dOutput), dOutput), (nameof(input), input));
            Load(nameof(ActivationBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(ActivationBackwardKernel))
                (Check.IndexRange(kernel, dInput), dInput, dOutput, input, (int)f);
        }

        /// <summary>
        /// dInput += dOutput * (1 - output^2): tanh's backward from its output y = tanh(x), which is what the IR saves for it
        /// (as libtorch does), so the pooler's input need not be kept.
        /// </summary>
        public void TanhBackward(ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<float> output)
        {
            const string kernel = nameof(TanhBackward);
            Check.SameLength(kernel, dInput, (nameof(dOutput), dOutput), (nameof(output), output));
            Load(nameof(TanhBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(TanhBackwardKernel))
                (Check.IndexRange(kernel, dInput), dInput, dOutput, output);
        }

        /// <summary>output = f(gate) * up (SwiGLU with Silu, GeGLU with GeluTanh).</summary>
        public void GatedForward(KernelActivation f, ArrayView<float> output, ArrayView<float> gate, ArrayView<float> up)
        {
            const string kernel = nameof(GatedForward);
            CheckActivation(kernel, f);
            Check.SameLength(kernel, output, (nameof(gate), gate), (nameof(up), up));
            Load(nameof(GatedForwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(GatedForwardKernel))
                (Check.IndexRange(kernel, output), output, gate, up, (int)f);
        }

        /// <summary>dGate += dOutput * up * f'(gate); dUp += dOutput * f(gate).</summary>
        public void GatedBackward(KernelActivation f, ArrayView<float> dGate, ArrayView<float> dUp, ArrayView<float> dOutput, ArrayView<float> gate, ArrayView<float> up)
        {
            const string kernel = nameof(GatedBackward);
            CheckActivation(kernel, f);
            Check.SameLength(kernel, dGate, (nameof(dUp), dUp), (nameof(dOutput), dOutput), (nameof(gate), gate), (nameof(up), up));
            Load(nameof(GatedBackwardKernel), acc => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, int>(GatedBackwardKernel))
                (Check.IndexRange(kernel, dGate), dGate, dUp, dOutput, gate, up, (int)f);
        }

        private static void CheckActivation(string kernel, KernelActivation f)
        {
            if (!Enum.IsDefined(f)) throw new ArgumentOutOfRangeException(nameof(f), f, $"{kernel}: unknown activation {(int)f}.");
        }

        [Kernel]
        internal static void ActivationForwardKernel(Index1D i, ArrayView<float> output, ArrayView<float> input, int f)
            => output[i] = ActivationValue(f, input[i]);

        [Kernel]
        internal static void ActivationBackwardKernel(Index1D i, ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<float> input, int f)
            => dInput[i] += dOutput[i] * ActivationDerivative(f, input[i]);

        [Kernel]
        internal static void TanhBackwardKernel(Index1D i, ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<float> output)
        {
            float y = output[i];
            dInput[i] += dOutput[i] * (1f - y * y);
        }

        [Kernel]
        internal static void GatedForwardKernel(Index1D i, ArrayView<float> output, ArrayView<float> gate, ArrayView<float> up, int f)
            => output[i] = ActivationValue(f, gate[i]) * up[i];

        /// <summary>y = f(g) u: dy/dg = f'(g) u, dy/du = f(g).</summary>
        [Kernel]
        internal static void GatedBackwardKernel(Index1D i, ArrayView<float> dGate, ArrayView<float> dUp, ArrayView<float> dOutput,
            ArrayView<float> gate, ArrayView<float> up, int f)
        {
            float g = gate[i], dy = dOutput[i];
            dGate[i] += dy * up[i] * ActivationDerivative(f, g);
            dUp[i] += dy * ActivationValue(f, g);
        }

        private const float GeluTanhScale = 0.7978845608f; // sqrt(2 / pi)
        private const float GeluTanhCubic = 0.044715f;
        private const float InverseSqrt2 = 0.70710678118f;
        private const float InverseSqrt2Pi = 0.39894228040f; // 1 / sqrt(2 pi)

        /// <summary>f(x), for kernels that fuse an activation (f is a <see cref="KernelActivation"/>).</summary>
        internal static float ActivationValue(int f, float x)
        {
            switch (f)
            {
                case (int)KernelActivation.Gelu:
                    return x * NormalCdf(x);
                case (int)KernelActivation.GeluTanh:
                    return 0.5f * x * (1f + Tanh(GeluTanhScale * (x + GeluTanhCubic * x * x * x)));
                case (int)KernelActivation.Relu:
                    return x < 0f ? 0f : x; // NaN passes through, as in torch.relu
                case (int)KernelActivation.Silu:
                    return x / (1f + XMath.Exp(-x));
                default:
                    return Tanh(x);
            }
        }

        // Gelu: d/dx x Phi(x) = Phi(x) + x phi(x). GeluTanh: with t = tanh(u), u = k (x + c x^3),
        // d/dx 0.5 x (1 + t) = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2). Silu: with s = sigmoid(x),
        // d/dx x s = s (1 + x (1 - s)). Tanh: 1 - tanh^2. Relu: 1 where x > 0, else 0 (torch's choice at 0).
        internal static float ActivationDerivative(int f, float x)
        {
            switch (f)
            {
                case (int)KernelActivation.Gelu:
                    return NormalCdf(x) + x * InverseSqrt2Pi * XMath.Exp(-0.5f * x * x);
                case (int)KernelActivation.GeluTanh:
                {
                    float t = Tanh(GeluTanhScale * (x + GeluTanhCubic * x * x * x));
                    return 0.5f * (1f + t) + 0.5f * x * (1f - t * t) * GeluTanhScale * (1f + 3f * GeluTanhCubic * x * x);
                }
                case (int)KernelActivation.Relu:
                    return x > 0f ? 1f : 0f;
                case (int)KernelActivation.Silu:
                {
                    float s = 1f / (1f + XMath.Exp(-x));
                    return s * (1f + x * (1f - s));
                }
                default:
                {
                    float t = Tanh(x);
                    return 1f - t * t;
                }
            }
        }

        /// <summary>tanh without overflow: sign(x) (1 - 2 / (e^(2|x|) + 1)); an infinite exponential gives +-1.</summary>
        internal static float Tanh(float x)
        {
            float t = 1f - 2f / (XMath.Exp(2f * XMath.Abs(x)) + 1f);
            return x < 0f ? -t : t;
        }

        /// <summary>
        /// Phi(x) = erfc(-x / sqrt 2) / 2, with erfc from Numerical Recipes (2nd ed., 6.2, erfcc: relative error below 1.2e-7
        /// for arguments >= 0). Evaluating the tail directly keeps GELU's small negative outputs accurate instead of
        /// cancelling 1 - erf.
        /// </summary>
        internal static float NormalCdf(float x)
        {
            float z = XMath.Abs(x) * InverseSqrt2;
            float t = 1f / (1f + 0.5f * z);
            float poly = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f
                + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
            float tail = 0.5f * t * XMath.Exp(-z * z + poly); // Phi(-|x|)
            return x < 0f ? tail : 1f - tail;
        }
    }
}
