using System.Collections.Generic;
using System.Linq;

namespace ModelDsl.Generators.Ir.Analysis
{
    /// <summary>
    /// Which ops a backend may fuse, derived from the graph's dataflow alone. Today one rule: a linear layer whose
    /// output nothing but one activation reads (inside its function, and not returned) can take that activation as
    /// its epilogue, writing the pre-activation (which the activation's backward reads) and the activation in one pass.
    /// A projection with a LoRA update is not such a linear: its output meets the update in an addition first.
    /// </summary>
    internal static class Fusion
    {
        /// <summary>The activation each fusable linear op of <paramref name="function"/> takes as its epilogue.</summary>
        public static IReadOnlyDictionary<Op, ActivationOp> LinearActivations(Function function)
        {
            var readers = function.Ops.SelectMany(op => op.Inputs.Distinct().Select(input => (input, op)))
                .GroupBy(p => p.input).ToDictionary(g => g.Key, g => g.Select(p => p.op).ToList());
            var fused = new Dictionary<Op, ActivationOp>();
            foreach (var op in function.Ops.OfType<LinearOp>())
            {
                int output = op.Output();
                if (function.Outputs.Contains(output) || !readers.TryGetValue(output, out var consumers)) continue;
                if (consumers.Count == 1 && consumers[0] is ActivationOp activation && activation.Inputs.Count == 1)
                    fused[op] = activation;
            }
            return fused;
        }
    }
}
