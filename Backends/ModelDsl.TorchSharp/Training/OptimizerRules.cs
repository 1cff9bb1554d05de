using System.Collections.Generic;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>The rules the trainer's optimizer follows beyond libtorch's defaults, shared with the tests that replay it.</summary>
    public static class OptimizerRules
    {
        /// <summary>
        /// Every parameter takes an AdamW step every step, with a zero gradient when it got none (an expert no token was
        /// routed to yet). libtorch's AdamW skips a parameter whose gradient is undefined, so that expert's step count
        /// would lag the others' and its first update be bias-corrected as a first step; the ILGPU backend's one fused
        /// AdamW over a flat gradient buffer steps every parameter, as llm.c, DeepSpeed and Megatron do. A zero gradient
        /// from the start makes both backends follow that one rule (zero_grad zeroes gradients in place, so it holds at
        /// every step).
        /// </summary>
        public static void GiveEveryParameterAGradient(IEnumerable<Parameter> parameters)
        {
            foreach (var p in parameters)
            {
                using var grad = p.grad;
                if (grad is null) p.grad = zeros_like(p);
            }
        }
    }
}
