using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Helpers;

namespace ModelDsl.Generators.Ir.Analysis
{
    /// <summary>One instance of a value: the value itself, or its copy in layer <see cref="Layer"/> of a stack (-1: outside stacks).</summary>
    internal readonly record struct ValueRef(int Value, int Layer);

    /// <summary>An op of the flat schedule: calls and stacks inlined, every value an instance.</summary>
    internal sealed record ScheduledOp(Op Op, string Function, string? Stack, int Layer, EquatableArray<ValueRef> Inputs, EquatableArray<ValueRef> Outputs);

    /// <summary>A forward op's backward: the forward tensors it reads (saved by the forward pass) and the per-row statistics it keeps.</summary>
    internal sealed record BackwardStep(ScheduledOp Forward, EquatableArray<ValueRef> Saved, EquatableArray<SavedStatistic> Statistics);

    /// <summary>A tensor a forward op computes only for its backward (LayerNorm's mean and 1/std, attention's log-sum-exp).</summary>
    internal sealed record SavedStatistic(string Name, EquatableArray<Dim> Shape, ElementType Type = ElementType.Float);

    /// <summary>
    /// The forward schedule (the forward function, then the task loss, with every call and stack inlined, in
    /// execution order) and the reversed backward schedule with what each backward op needs, as llm.c's
    /// gpt2_forward and gpt2_backward lay them out by hand. Derived from the graph alone.
    /// </summary>
    internal sealed class Schedule
    {
        private Schedule(ModelGraph graph, IReadOnlyList<ScheduledOp> forward, IReadOnlyList<ValueRef> inputs)
        {
            Graph = graph;
            Forward = forward;
            Inputs = inputs;
            Backward = forward.Reverse().Select(BackwardOf).ToList();
        }

        public ModelGraph Graph { get; }

        /// <summary>The graph inputs the schedule reads (ids, masks, targets, ...).</summary>
        public IReadOnlyList<ValueRef> Inputs { get; }

        public IReadOnlyList<ScheduledOp> Forward { get; }

        public IReadOnlyList<BackwardStep> Backward { get; }

        public static Schedule Of(ModelGraph graph)
        {
            var ops = new List<ScheduledOp>();
            var inputs = new List<ValueRef>();
            var forward = graph.Forward;
            var bindings = forward.Inputs.ToDictionary(i => i, i => new ValueRef(i, -1));
            inputs.AddRange(bindings.Values);
            var logits = Inline(graph, forward, bindings, -1, null, ops);

            var loss = graph.Loss;
            var lossBindings = new Dictionary<int, ValueRef> { [loss.Inputs[0]] = logits[0], [loss.Inputs[1]] = new ValueRef(loss.Inputs[1], -1) };
            inputs.Add(lossBindings[loss.Inputs[1]]);
            Inline(graph, loss, lossBindings, -1, null, ops);
            return new Schedule(graph, ops, inputs);
        }

        private static IReadOnlyList<ValueRef> Inline(ModelGraph graph, Function function, Dictionary<int, ValueRef> bindings,
            int layer, string? stack, List<ScheduledOp> ops)
        {
            var map = new Dictionary<int, ValueRef>(bindings);
            ValueRef Resolve(int value) => map.TryGetValue(value, out var r) ? r : new ValueRef(value, layer);

            foreach (var op in function.Ops)
            {
                var actual = op.Inputs.Select(Resolve).ToArray();
                switch (op)
                {
                    case CallOp call:
                    {
                        var callee = graph.Function(call.Function);
                        var results = Inline(graph, callee, Bind(callee, actual), layer, stack, ops);
                        for (int i = 0; i < op.Outputs.Count; i++) map[op.Outputs[i]] = results[i];
                        break;
                    }
                    case RepeatOp repeat:
                    {
                        var s = graph.Stack(repeat.Stack);
                        var carried = actual.Take(repeat.Carried).ToArray();
                        var shared = actual.Skip(repeat.Carried).ToArray();
                        for (int l = 0; l < s.Layers; l++)
                        {
                            var body = graph.Function(s.Variants[s.VariantOfLayer[l]]);
                            carried = Inline(graph, body, Bind(body, carried.Concat(shared).ToArray()), l, s.Name, ops).ToArray();
                        }
                        for (int i = 0; i < op.Outputs.Count; i++) map[op.Outputs[i]] = carried[i];
                        break;
                    }
                    default:
                    {
                        var outputs = op.Outputs.Select(o => new ValueRef(o, layer)).ToArray();
                        foreach (var o in outputs) map[o.Value] = o;
                        ops.Add(new ScheduledOp(op, function.Name, stack, layer, actual.ToEquatableArray(), outputs.ToEquatableArray()));
                        break;
                    }
                }
            }
            return function.Outputs.Select(Resolve).ToArray();
        }

        private static Dictionary<int, ValueRef> Bind(Function callee, ValueRef[] arguments)
        {
            if (arguments.Length != callee.Inputs.Count)
                throw new InvalidOperationException($"{callee.Name} takes {callee.Inputs.Count} inputs, not {arguments.Length}.");
            var result = new Dictionary<int, ValueRef>();
            for (int i = 0; i < arguments.Length; i++) result[callee.Inputs[i]] = arguments[i];
            return result;
        }

        private BackwardStep BackwardOf(ScheduledOp s)
        {
            var (inputs, outputs, statistics) = Needs(s.Op);
            var saved = inputs.Select(i => s.Inputs[i]).Concat(outputs.Select(o => s.Outputs[o])).Distinct().ToEquatableArray();
            return new BackwardStep(s, saved, statistics(s).ToEquatableArray());
        }

        /// <summary>
        /// What the backward of each op kind reads: input and output indices, and the statistics its forward keeps.
        /// Linear layers need their input (for the weight gradient); norms their input and per-row statistics;
        /// attention q, k, v, its output and the log-sum-exp per query (flash attention recomputes the scores, so no
        /// T x T matrix is kept); softmax cross-entropy the logits and the log-sum-exp per row (no probabilities kept);
        /// additions, position terms, splits and scalings nothing.
        /// </summary>
        private (int[] Inputs, int[] Outputs, Func<ScheduledOp, IEnumerable<SavedStatistic>> Statistics) Needs(Op op)
        {
            IEnumerable<SavedStatistic> None(ScheduledOp _) => Array.Empty<SavedStatistic>();
            EquatableArray<Dim> RowsOf(ValueRef v) => Graph.Value(v.Value).Shape.Take(Graph.Value(v.Value).Shape.Count - 1).ToEquatableArray();
            switch (op)
            {
                case EmbeddingOp: return (new[] { 0 }, Array.Empty<int>(), None);
                case NormOp norm:
                    return (new[] { 0 }, Array.Empty<int>(), s => norm.Norm == Spec.NormKind.LayerNorm
                        ? new[] { new SavedStatistic("mean", RowsOf(s.Inputs[0])), new SavedStatistic("rstd", RowsOf(s.Inputs[0])) }
                        : new[] { new SavedStatistic("rstd", RowsOf(s.Inputs[0])) });
                case LinearOp: return (new[] { 0 }, Array.Empty<int>(), None);
                case LowRankOp: return (new[] { 0 }, Array.Empty<int>(), s => new[] { new SavedStatistic("hidden", RowsOf(s.Inputs[0]).Append(Graph.Parameter(op.Parameter(0)).Shape[0]).ToEquatableArray()) });
                case ActivationOp activation: return activation.Function == ActivationKind.Tanh ? (Array.Empty<int>(), new[] { 0 }, None) : (new[] { 0 }, Array.Empty<int>(), None);
                case GatedActivationOp: return (new[] { 0, 1 }, Array.Empty<int>(), None);
                case AttentionOp attention:
                    return (Enumerable.Range(0, op.Inputs.Count).ToArray(), new[] { 0 }, s =>
                    {
                        var q = Graph.Value(s.Inputs[0].Value).Shape;
                        return new[] { new SavedStatistic("lse", Shape.Of(q[0], new Dim("Heads", attention.Heads), q[1])) };
                    });
                case DropoutOp: return (Array.Empty<int>(), Array.Empty<int>(), s => new[] { new SavedStatistic("dropout_mask", Graph.Value(s.Inputs[0].Value).Shape, ElementType.Bool) });
                case RouterOp: return (new[] { 0 }, new[] { 0, 1, 2 }, None);
                case ExpertsOp experts:
                    return (new[] { 0, 1, 2 }, Array.Empty<int>(), s =>
                    {
                        var hidden = Shape.Of(Dims.Tokens, new Dim("TopK", Graph.Spec.Experts!.TopK), new Dim("Inner", Graph.Spec.Inner));
                        return experts.Gated
                            ? new[] { new SavedStatistic("expert_gate", hidden), new SavedStatistic("expert_up", hidden) }
                            : new[] { new SavedStatistic("expert_hidden", hidden) };
                    });
                case RouterLossOp: return (new[] { 0, 1 }, Array.Empty<int>(), None);
                case PatchEmbeddingOp: return (new[] { 0 }, Array.Empty<int>(), None);
                case CrossEntropyOp: return (new[] { 0, 1 }, Array.Empty<int>(), s => new[] { new SavedStatistic("lse", RowsOf(s.Inputs[0])) });
                default: return (Array.Empty<int>(), Array.Empty<int>(), None);
            }
        }
    }
}
