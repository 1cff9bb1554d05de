using System.Collections.Generic;
using ModelDsl.Generators.Ir;

namespace ModelDsl.Generators.Emit.Common
{
    /// <summary>The order in which every backend writes a graph's functions.</summary>
    internal static class FunctionOrder
    {
        /// <summary>Functions as a reader meets them: the entry, then each callee after its first caller, the loss last.</summary>
        public static List<Function> Reachable(ModelGraph graph)
        {
            var seen = new HashSet<string>();
            var order = new List<Function>();
            void Visit(Function f)
            {
                if (!seen.Add(f.Name)) return;
                order.Add(f);
                foreach (var op in f.Ops)
                {
                    if (op is CallOp call) Visit(graph.Function(call.Function));
                    if (op is RepeatOp repeat) foreach (var v in graph.Stack(repeat.Stack).Variants) Visit(graph.Function(v));
                }
            }
            Visit(graph.Forward);
            Visit(graph.Loss);
            return order;
        }
    }
}
