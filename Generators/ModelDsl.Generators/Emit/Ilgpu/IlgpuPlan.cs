using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Analysis;

namespace ModelDsl.Generators.Emit.Ilgpu
{
    /// <summary>
    /// A device buffer of the generated model: its field, the plan's name, its shape and copies. <see cref="Variant"/> is
    /// set when the copies are those of one variant of a stack whose layers differ (one per layer that runs it).
    /// </summary>
    internal sealed record IlgpuBuffer(string Field, string Name, EquatableArray<Dim> Shape, int Copies, string Summary, ElementType Type = ElementType.Float, string? Variant = null);

    /// <summary>
    /// The IR's buffer plan named for the ILGPU backend: a field per forward buffer (activations, statistics) and per
    /// gradient buffer. Gradients are one copy each (a layer's backward pass finishes before the next one starts),
    /// owned by the function that produces the value; a function's outputs and formal inputs get their gradients from
    /// the caller, so a call passes them in. Nothing here is re-derived: shapes and copies come from the plan.
    /// </summary>
    internal sealed class IlgpuPlan
    {
        private readonly Dictionary<int, IlgpuBuffer> forward = new();
        private readonly Dictionary<(int Value, string Statistic), IlgpuBuffer> statistics = new();
        private readonly Dictionary<int, IlgpuBuffer> gradients = new();
        private readonly HashSet<string> fields = new(StringComparer.Ordinal);
        private readonly Dictionary<int, string> owner = new();

        public IlgpuPlan(ModelGraph graph)
        {
            Graph = graph;
            Schedule = Schedule.Of(graph);
            Plan = BufferPlan.Of(Schedule);
            foreach (var f in graph.Functions)
                foreach (var op in f.Ops)
                    foreach (var o in op.Outputs) owner[o] = f.Name;
            FindVariants();

            // A router loss's scalar is not kept: every MoE layer adds to the model-wide RoutingStatistics instead.
            var routerLosses = new HashSet<int>(graph.AllOps().Where(p => p.Op is RouterLossOp).Select(p => p.Op.Output()));
            foreach (var b in Plan.Buffers.Where(b => b.Kind is BufferKind.Saved or BufferKind.Transient && !routerLosses.Contains(b.Value)))
                forward[b.Value] = new IlgpuBuffer(FieldFor(b.Value), b.Name, b.Shape, b.Copies,
                    b.Kind == BufferKind.Saved && b.Copies > 1 ? "one per layer: the backward pass reads it" : b.Kind == BufferKind.Saved ? "kept for the backward pass" : "reused",
                    b.Type, VariantOf(b.Value, b.Copies));
            // Hugging Face's load-balancing loss takes its means over all layers' routing at once: each MoE layer adds its
            // per-slot expert counts, probability sums and z-loss sum here, and the loss reads the total.
            if (graph.AllOps().FirstOrDefault(p => p.Op is RouterLossOp).Op is RouterLossOp routerLoss)
            {
                int topK = graph.Spec.Experts!.TopK;
                var length = new Dim("TopK*Experts+Experts+1", topK * routerLoss.Experts + routerLoss.Experts + 1);
                RoutingStatistics = new IlgpuBuffer(Unique("routingStatistics"), "routing statistics of every MoE layer (counts per slot and expert, probability sums, z sum)",
                    Ir.Shape.Of(length), 1, "model-wide: the load-balancing loss's means run over every layer");
            }
            // A statistic is named after the buffer of the value it describes (decoderLayerH -> decoderLayerHRstd).
            foreach (var b in Plan.Buffers.Where(b => b.Kind == BufferKind.Statistic))
                statistics[(b.Value, b.Statistic!)] = new IlgpuBuffer(Unique(forward[b.Value].Field + Pascal(b.Statistic!)), b.Name, b.Shape, b.Copies, "statistic for the backward pass",
                    b.Type, VariantOf(b.Value, b.Copies));

            var functionOutputs = new HashSet<int>(graph.Functions.SelectMany(f => f.Outputs));
            foreach (var f in graph.Functions)
                foreach (var op in f.Ops.Where(o => o is not SplitOp))
                    foreach (var o in op.Outputs.Where(o => NeedsGradient(o) && !functionOutputs.Contains(o)))
                        gradients[o] = new IlgpuBuffer(GradientField(o), "gradient of " + f.Name + "." + graph.Value(o).Name, graph.Value(o).Shape, 1, "gradient");
            // The gradients of the forward pass's outputs (the logits) belong to the top level: the loss fills them.
            foreach (var o in graph.Forward.Outputs)
                gradients[o] = new IlgpuBuffer(GradientField(o), "gradient of " + graph.Forward.Name + "." + graph.Value(o).Name, graph.Value(o).Shape, 1, "gradient");
            // Each stack passes its carried gradient between layers through two buffers in turn.
            foreach (var (f, op) in graph.AllOps().Where(p => p.Op is RepeatOp))
            {
                var repeat = (RepeatOp)op;
                var shape = graph.Value(op.Input(0)).Shape;
                foreach (var parity in new[] { "Even", "Odd" })
                    CarriedGradients[(repeat.Stack, parity)] = new IlgpuBuffer(Camel(repeat.Stack) + "LayerInputGradient" + parity,
                        $"gradient of a {repeat.Stack} layer's input ({parity.ToLowerInvariant()} layers)", shape, 1, "gradient");
            }
        }

        public ModelGraph Graph { get; }

        public Schedule Schedule { get; }

        public BufferPlan Plan { get; }

        public Dictionary<(string Stack, string Parity), IlgpuBuffer> CarriedGradients { get; } = new();

        /// <summary>The model-wide routing statistics of a mixture of experts (null for a dense model).</summary>
        public IlgpuBuffer? RoutingStatistics { get; }

        /// <summary>Every buffer the model allocates, forward first, in plan order.</summary>
        public IEnumerable<IlgpuBuffer> All
            => forward.Values.Concat(statistics.Values).Concat(RoutingStatistics is null ? Array.Empty<IlgpuBuffer>() : new[] { RoutingStatistics })
                .Concat(gradients.Values).Concat(CarriedGradients.Values);

        public IlgpuBuffer? Forward(int value) => forward.TryGetValue(value, out var b) ? b : null;

        public IlgpuBuffer Statistic(int value, string statistic) => statistics[(value, statistic)];

        public IlgpuBuffer? Gradient(int value) => gradients.TryGetValue(value, out var b) ? b : null;

        // ---------------------------------------------------------------- stacks whose layers differ

        /// <summary>The functions reached from exactly one variant of a stack whose layers differ, and that variant.</summary>
        private readonly Dictionary<string, string> variantOfFunction = new(StringComparer.Ordinal);

        /// <summary>Per variant of such a stack, which copy of its buffers each layer uses (-1: the layer runs another variant).</summary>
        public Dictionary<string, int[]> VariantCopies { get; } = new(StringComparer.Ordinal);

        private void FindVariants()
        {
            foreach (var stack in Graph.Stacks.Where(s => s.Variants.Count > 1))
            {
                var reachedBy = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
                foreach (var variant in stack.Variants)
                {
                    var layers = stack.LayersOf(variant).ToList();
                    VariantCopies[variant] = Enumerable.Range(0, stack.Layers).Select(l => layers.IndexOf(l)).ToArray();
                    var pending = new Stack<string>(new[] { variant });
                    while (pending.Count > 0)
                    {
                        string name = pending.Pop();
                        if (!reachedBy.TryGetValue(name, out var variants)) reachedBy[name] = variants = new HashSet<string>(StringComparer.Ordinal);
                        if (!variants.Add(variant)) continue;
                        foreach (var call in Graph.Function(name).Ops.OfType<CallOp>()) pending.Push(call.Function);
                    }
                }
                foreach (var reached in reachedBy.Where(r => r.Value.Count == 1))
                    variantOfFunction[reached.Key] = reached.Value.Single();
            }
        }

        /// <summary>The variant of a stack whose layers differ that alone reaches a function, or null.</summary>
        public string? VariantOfFunction(string function) => variantOfFunction.TryGetValue(function, out var variant) ? variant : null;

        /// <summary>The variant whose layers a value's copies are (null: one copy, or one per layer of the stack).</summary>
        private string? VariantOf(int value, int copies)
            => copies > 1 && owner.TryGetValue(value, out var function) && variantOfFunction.TryGetValue(function, out var variant) ? variant : null;

        /// <summary>The copy of a buffer that <paramref name="layer"/> (a C# expression) uses.</summary>
        public static string Copy(IlgpuBuffer buffer, string layer)
            => buffer.Copies == 1 ? "0" : buffer.Variant is { } variant ? $"{CopyTable(variant)}[{layer}]" : layer;

        /// <summary>The generated table of a variant's copies ("ExpertDecoderLayerCopy").</summary>
        public static string CopyTable(string variant) => Pascal(variant) + "Copy";

        /// <summary>The generated table of the variant each layer of a stack runs ("DecoderVariant").</summary>
        public static string VariantTable(Stack stack) => Pascal(stack.Name) + "Variant";

        /// <summary>The generated method that returns a layer's output in its variant's buffers ("DecoderLayerOutput").</summary>
        public static string LayerOutput(Stack stack) => Pascal(stack.Name) + "LayerOutput";

        /// <summary>Floating values produced by ops have gradients; ids, expert indices and the scalar losses do not.</summary>
        public bool NeedsGradient(int value)
        {
            var v = Graph.Value(value);
            return v.Type == ElementType.Float && v.Role == InputRole.None && v.Shape.Count > 0;
        }

        /// <summary>The gradients a function owns (and zeroes when its backward pass starts).</summary>
        public IEnumerable<IlgpuBuffer> OwnedGradients(Function function)
        {
            var outputs = new HashSet<int>(function.Outputs);
            return function.Ops.Where(o => o is not SplitOp).SelectMany(o => o.Outputs)
                .Where(o => !outputs.Contains(o) && gradients.ContainsKey(o)).Select(o => gradients[o]);
        }

        /// <summary>"d" and the value's buffer name (dDecoderLayerH); a call's outputs, which have no buffer of their own, get a fresh name.</summary>
        private string GradientField(int value)
            => Unique("d" + Pascal(forward.TryGetValue(value, out var buffer) ? buffer.Field : FieldFor(value)));

        private string Unique(string name)
        {
            string unique = name;
            for (int n = 2; !fields.Add(unique) || Reserved.Contains(unique); n++) unique = name + n.ToString(CultureInfo.InvariantCulture);
            return unique;
        }

        private string FieldFor(int value)
        {
            var v = Graph.Value(value);
            string function = owner.TryGetValue(value, out var f) ? f : "";
            // The forward function's and the loss's values read best without a prefix (x, logits, loss).
            string prefix = function == Graph.Forward.Name || function == ModelGraph.LossFunction ? "" : Camel(function);
            return Unique(prefix.Length == 0 ? Camel(v.Name) : prefix + Pascal(v.Name));
        }

        /// <summary>Names the generated class or its base already uses.</summary>
        private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
        {
            "layer", "Ids", "Targets", "SegmentIds", "PaddingMask", "SourceIds", "SourceMask", "SourceTime", "Pixels", "Training", "Batch", "Time", "Tokens", "Kernels", "Parameters", "Device", "Card", "LossScale", "RoutedTokens",
        };

        /// <summary>"dropout_mask" -> "DropoutMask", "qkv" -> "Qkv".</summary>
        public static string Pascal(string name)
            => string.Concat(Clean(name).Split(new[] { '_' }, StringSplitOptions.RemoveEmptyEntries).Select(p => char.ToUpperInvariant(p[0]) + p.Substring(1)));

        public static string Camel(string name)
        {
            string pascal = Pascal(name);
            return pascal.Length == 0 ? pascal : char.ToLowerInvariant(pascal[0]) + pascal.Substring(1);
        }

        private static string Clean(string name) => new(name.Select(c => char.IsLetterOrDigit(c) ? c : '_').ToArray());

        /// <summary>Elements of one copy as a C# lambda over the run-time batch and time ("(b, t) => (long)b * t * Hidden").</summary>
        public static string Elements(EquatableArray<Dim> shape)
        {
            var factors = shape.Select(d =>
                !d.IsStatic ? (d == Dims.Batch ? "b" : d == Dims.Tokens ? "b * t" : d == Dims.Time || d == Dims.KeyTime ? "t" : d == Dims.SourceTime ? "s"
                    : throw new NotSupportedException($"The ILGPU backend has no run-time size for {d.Symbol}."))
                : Operand(d.Expression)).ToList();
            // Only an encoder-decoder's source-side buffers depend on the source length (the three-argument form).
            string parameters = shape.Contains(Dims.SourceTime) ? "(b, t, s)" : "(b, t)";
            return factors.Count == 0 ? parameters + " => 1L" : parameters + " => (long)" + string.Join(" * ", factors);
        }

        /// <summary>The rows of a value (every dimension but the last) as a C# expression over Batch, Time, SourceTime and Tokens.</summary>
        public static string Rows(EquatableArray<Dim> shape)
        {
            var leading = shape.Take(shape.Count - 1).ToList();
            if (leading.Count == 2 && leading[0] == Dims.Batch && leading[1] == Dims.Time) return "Tokens";
            return leading.Count == 0 ? "1" : string.Join(" * ", leading.Select(Size));
        }

        /// <summary>One dimension as a C# operand: the run-time Batch, Time, SourceTime or Tokens, or the declaration's constant.</summary>
        public static string Size(Dim d)
            => !d.IsStatic ? (d == Dims.Batch ? "Batch" : d == Dims.Tokens ? "Tokens" : d == Dims.SourceTime ? "SourceTime" : "Time")
             : Operand(d.Expression);

        /// <summary>An expression as a factor of a product: "Patches + 1" needs parentheses.</summary>
        private static string Operand(string expression) => expression.IndexOf('+') >= 0 ? "(" + expression + ")" : expression;

        /// <summary>The last dimension as a C# expression ("Hidden", "3 * Hidden").</summary>
        public static string Width(EquatableArray<Dim> shape) => shape[shape.Count - 1].Expression;
    }
}
