using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Analysis;

namespace ModelDsl.Generators.Emit.Ilgpu
{
    /// <summary>
    /// Writes one graph function as two methods, "{Function}Forward" and "{Function}Backward": one kernel launch per
    /// op, the backward in reverse op order, accumulating gradients. Views come from the plan: a value's buffer (the
    /// layer's copy when the plan keeps one per layer), a split's outputs as column views of its input, a call's
    /// outputs as the callee's buffers; the formal inputs and their gradients are method parameters.
    /// </summary>
    internal sealed class IlgpuFunctionWriter
    {
        public const string View = "global::ILGPU.ArrayView<float>";

        private readonly Dictionary<int, Op> producer = new();

        public IlgpuFunctionWriter(IlgpuPlan plan, Function function, CodeWriter writer)
        {
            Plan = plan;
            Function = function;
            Writer = writer;
            foreach (var op in function.Ops)
                foreach (var o in op.Outputs) producer[o] = op;
            epilogues = Fusion.LinearActivations(function);
            fusedActivations = new HashSet<Op>(epilogues.Values);
        }

        private readonly IReadOnlyDictionary<Op, ActivationOp> epilogues;
        private readonly HashSet<Op> fusedActivations;

        /// <summary>The activation a linear op writes as its epilogue (<see cref="Fusion"/>), or null.</summary>
        public ActivationOp? Epilogue(Op linear) => epilogues.TryGetValue(linear, out var activation) ? activation : null;

        /// <summary>Whether an activation is written by its producer's epilogue (its own forward launch is then none).</summary>
        public bool IsEpilogue(Op activation) => fusedActivations.Contains(activation);

        public IlgpuPlan Plan { get; }

        public ModelGraph Graph => Plan.Graph;

        public Function Function { get; }

        public CodeWriter Writer { get; private set; }

        /// <summary>The variant whose per-layer buffers this function indexes by the local "copy" (null: none).</summary>
        private string? CopyVariant => TakesLayer ? Plan.VariantOfFunction(Function.Name) : null;

        /// <summary>
        /// Writes a method's body aside, then in place: in a variant's function the layer's copy of that variant's buffers
        /// is looked up once, as the local "copy", when the body uses it.
        /// </summary>
        private void WriteBody(Action writeOps)
        {
            var method = Writer;
            var body = new CodeWriter(method.Depth);
            Writer = body;
            writeOps();
            Writer = method;
            if (CopyVariant is { } variant && body.ToString().Contains("[copy]"))
                Writer.Commented($"int copy = {IlgpuPlan.CopyTable(variant)}[layer];", $"this layer's copy of {variant}'s per-layer buffers");
            Writer.Append(body);
        }

        /// <summary>The copy of a buffer that <paramref name="layer"/> uses: the local "copy" for this function's variant.</summary>
        private string CopyOf(IlgpuBuffer buffer, string layer)
            => buffer.Variant is not null && buffer.Variant == CopyVariant && layer == "layer" ? "copy" : IlgpuPlan.Copy(buffer, layer);

        public bool TakesLayer => Function.Stack is not null;

        public static string ForwardName(Function f) => f.Name + "Forward";

        public static string BackwardName(Function f) => f.Name + "Backward";

        // ---------------------------------------------------------------- methods

        public void WriteForward()
        {
            var parameters = Layer().Concat(Function.Inputs.Where(IsParameter).Select(i => View + " " + Name(i)));
            Writer.Line($"/// <summary>Forward: {Escape(Function.Summary)}</summary>");
            using (Writer.Block($"private void {ForwardName(Function)}({string.Join(", ", parameters)})"))
                WriteBody(() =>
                {
                    foreach (var op in Function.Ops)
                    {
                        if (!IlgpuOps.Forward.TryGetValue(op.Kind, out var write))
                            throw new NotSupportedException($"The ILGPU backend has no forward writer for {op.Kind}.");
                        write(this, op);
                    }
                });
        }

        public void WriteBackward()
        {
            var parameters = Layer()
                .Concat(Function.Inputs.Where(IsParameter).SelectMany(i => Plan.NeedsGradient(i)
                    ? new[] { View + " " + Name(i), View + " " + GradientName(i) } : new[] { View + " " + Name(i) }))
                .Concat(Function.Outputs.Where(Plan.NeedsGradient).Select(o => View + " " + OutputGradientName(o)));
            Writer.Line($"/// <summary>Backward of {Function.Name}: the ops in reverse, accumulating into the input and parameter gradients.</summary>");
            using (Writer.Block($"private void {BackwardName(Function)}({string.Join(", ", parameters)})"))
                WriteBody(() =>
                {
                    foreach (var g in Plan.OwnedGradients(Function)) Writer.Line($"Zero({g.Field}[0]);");
                    foreach (var op in Function.Ops.Reverse())
                    {
                        if (!IlgpuOps.Backward.TryGetValue(op.Kind, out var write))
                            throw new NotSupportedException($"The ILGPU backend has no backward writer for {op.Kind}.");
                        write(this, op);
                    }
                });
        }

        private IEnumerable<string> Layer() => TakesLayer ? new[] { "int layer" } : Array.Empty<string>();

        /// <summary>Formal inputs that are graph inputs (ids, targets) are the base class's views, not parameters.</summary>
        private bool IsParameter(int input) => Graph.Value(input).Role == InputRole.None;

        private string Name(int value) => TypeName(IlgpuPlan.Camel(Graph.Value(value).Name));

        private string GradientName(int value) => "d" + IlgpuPlan.Pascal(Graph.Value(value).Name);

        private string OutputGradientName(int value)
            => Function.Outputs.Count == 1 ? "dOutput" : "dOutput" + IlgpuPlan.Pascal(Graph.Value(value).Name);

        private static string TypeName(string name) => Microsoft.CodeAnalysis.CSharp.SyntaxFacts.GetKeywordKind(name) != Microsoft.CodeAnalysis.CSharp.SyntaxKind.None ? "@" + name : name;

        // ---------------------------------------------------------------- views

        /// <summary>The view holding a value in this function.</summary>
        public string ViewOf(int value) => ViewOf(Function, value, TakesLayer ? "layer" : "0");

        /// <summary>The view holding a value of function <paramref name="f"/> in <paramref name="layer"/> (a C# expression).</summary>
        public string ViewOf(Function f, int value, string layer)
        {
            if (f.Inputs.Contains(value))
            {
                var role = Graph.Value(value).Role;
                if (role != InputRole.None) return BaseInput(role);
                if (f != Function) throw new NotSupportedException($"{f.Name} returns its input {Graph.Value(value).Name}.");
                return Name(value);
            }
            var op = f.Ops.First(o => o.Outputs.Contains(value));
            switch (op)
            {
                case SplitOp split:
                    int index = split.Outputs.AsImmutableArray().IndexOf(value);
                    string input = ViewOf(f, split.Input(0), layer);
                    return index == 0 ? input : $"{input}.SubView({Offset(split, index)})";
                case CallOp call:
                {
                    var callee = Graph.Function(call.Function);
                    return ViewOf(callee, callee.Outputs[call.Outputs.AsImmutableArray().IndexOf(value)], layer);
                }
                case RepeatOp repeat:
                {
                    var stack = Graph.Stack(repeat.Stack);
                    if (stack.Variants.Count > 1) return $"{IlgpuPlan.LayerOutput(stack)}({stack.Name}Layers - 1)";
                    var body = Graph.Function(stack.Variants[0]);
                    return ViewOf(body, body.Outputs[repeat.Outputs.AsImmutableArray().IndexOf(value)], stack.Name + "Layers - 1");
                }
                default:
                    var buffer = Plan.Forward(value) ?? throw new InvalidOperationException($"No buffer for {Graph.Value(value)}.");
                    string copy = CopyOf(buffer, layer);
                    // Integer values (a router's chosen experts) are int32 on the device, four bytes like a float.
                    return buffer.Type == ElementType.Int64 ? $"{buffer.Field}.Ints({copy})" : $"{buffer.Field}[{copy}]";
            }
        }

        /// <summary>The gradient view of a value in this function, or null when it has none (ids, targets).</summary>
        public string? GradientOf(int value)
        {
            if (!Plan.NeedsGradient(value)) return null;
            if (Function.Inputs.Contains(value)) return GradientName(value);
            if (Function.Outputs.Contains(value)) return OutputGradientName(value);
            if (producer.TryGetValue(value, out var op) && op is SplitOp split)
            {
                int index = split.Outputs.AsImmutableArray().IndexOf(value);
                string input = GradientOf(split.Input(0)) ?? throw new InvalidOperationException("A split input without gradient.");
                return index == 0 ? input : $"{input}.SubView({Offset(split, index)})";
            }
            var buffer = Plan.Gradient(value) ?? throw new InvalidOperationException($"No gradient buffer for {Graph.Value(value)}.");
            return buffer.Field + "[0]";
        }

        /// <summary>Floats between one row and the next of a value: its width, or its split input's for a column view.</summary>
        public string RowStride(int value)
            => producer.TryGetValue(value, out var op) && op is SplitOp split
                ? IlgpuPlan.Width(Graph.Value(split.Input(0)).Shape)
                : IlgpuPlan.Width(Graph.Value(value).Shape);

        /// <summary>Whether a value is a column view of a wider buffer (only attention reads those).</summary>
        public bool IsColumnView(int value) => producer.TryGetValue(value, out var op) && op is SplitOp;

        private string Offset(SplitOp split, int index)
        {
            var widths = split.Outputs.Take(index).Select(o => Graph.Value(o).Shape[Graph.Value(o).Shape.Count - 1]).ToList();
            return widths.All(w => w == widths[0]) && widths.Count > 1 ? $"{widths.Count} * {widths[0].Expression}" : string.Join(" + ", widths.Select(w => w.Expression));
        }

        private static string BaseInput(InputRole role) => role switch
        {
            InputRole.TokenIds => "Ids",
            InputRole.Targets => "Targets",
            InputRole.SegmentIds => "SegmentIds",
            InputRole.PaddingMask => "PaddingMask",
            InputRole.Pixels => "Pixels",
            InputRole.SourceIds => "SourceIds",
            InputRole.SourceMask => "SourceMask",
            _ => throw new NotSupportedException($"The ILGPU backend has no input for {role}."),
        };

        public string In(Op op, int i) => ViewOf(op.Inputs[i]);

        public string Out(Op op, int i = 0) => ViewOf(op.Outputs[i]);

        public string? DIn(Op op, int i) => GradientOf(op.Inputs[i]);

        public string DOut(Op op, int i = 0) => GradientOf(op.Outputs[i]) ?? throw new InvalidOperationException($"{Graph.Value(op.Outputs[i])} has no gradient.");

        public Value ValueOf(int value) => Graph.Value(value);

        public string Rows(int value) => IlgpuPlan.Rows(Graph.Value(value).Shape);

        public string Width(int value) => IlgpuPlan.Width(Graph.Value(value).Shape);

        public string Statistic(Op op, string name)
        {
            var buffer = Plan.Statistic(op.Output(), name);
            string copy = CopyOf(buffer, "layer");
            return buffer.Type == ElementType.Bool ? $"{buffer.Field}.Bytes({copy})" : $"{buffer.Field}[{copy}]";
        }

        /// <summary>The layer expression for per-call values (seeds): "layer" in a stack's functions, else 0.</summary>
        public string LayerOrZero => TakesLayer ? "layer" : "0";

        // ---------------------------------------------------------------- parameters

        public Parameter Parameter(Op op, int i) => Graph.Parameter(op.Parameter(i));

        public string Weight(Op op, int i) => Access("Weight", op, i);

        public string WeightGradient(Op op, int i) => Access("Gradient", op, i);

        private string Access(string method, Op op, int i)
        {
            if (!op.HasParameter(i)) return "default";
            var p = Parameter(op, i);
            return p.Layers.Count > 0 ? $"{method}({CodeWriter.Literal(p.Path)}, layer)" : $"{method}({CodeWriter.Literal(p.PathAt(0))})";
        }

        // ---------------------------------------------------------------- lines

        /// <summary>A launch with the shape of the op's output (its first by default) as a comment.</summary>
        public void Line(string code, Op op, int output = 0) => Writer.Commented(code, Ir.Shape.Format(Graph.Value(op.Outputs[output]).Shape));

        /// <summary>A backward launch with the shape of the gradient it writes as a comment.</summary>
        public void GradientLine(string code, int value) => Writer.Commented(code, "d" + Graph.Value(value).Name + " " + Ir.Shape.Format(Graph.Value(value).Shape));

        /// <summary>A backward launch into a parameter's gradient, commented with the parameter's shape.</summary>
        public void ParameterGradientLine(string code, Op op, int parameter)
        {
            var p = Parameter(op, parameter);
            Writer.Commented(code, "d" + p.Name + " " + Ir.Shape.Format(p.Shape));
        }

        public void Plain(string code) => Writer.Line(code);

        // ---------------------------------------------------------------- calls and stacks

        public void CallForward(CallOp call)
        {
            var callee = Graph.Function(call.Function);
            var arguments = (callee.Stack is not null ? new[] { "layer" } : Array.Empty<string>())
                .Concat(call.Inputs.Where((_, i) => callee.Inputs[i] is int formal && Graph.Value(formal).Role == InputRole.None).Select(ViewOf));
            Line($"{ForwardName(callee)}({string.Join(", ", arguments)});", call);
        }

        public void CallBackward(CallOp call)
        {
            var callee = Graph.Function(call.Function);
            string code = $"{BackwardName(callee)}({string.Join(", ", BackwardArguments(callee, call.Inputs.AsImmutableArray(), call.Outputs.AsImmutableArray(), "layer"))});";
            // Commented with the first input gradient it writes (a call over ids alone, like an encoder's, writes none).
            if (call.Inputs.FirstOrDefault(Plan.NeedsGradient) is var input && Plan.NeedsGradient(input)) GradientLine(code, input);
            else Plain(code);
        }

        private IEnumerable<string> BackwardArguments(Function callee, IReadOnlyList<int> inputs, IReadOnlyList<int> outputs, string layer,
            string? carriedInput = null, string? carriedGradient = null, string? outputGradient = null)
        {
            if (callee.Stack is not null) yield return layer;
            for (int i = 0; i < inputs.Count; i++)
            {
                int formal = callee.Inputs[i];
                if (Graph.Value(formal).Role != InputRole.None) continue;
                yield return i == 0 && carriedInput is not null ? carriedInput : ViewOf(inputs[i]);
                if (Plan.NeedsGradient(formal))
                    yield return i == 0 && carriedGradient is not null ? carriedGradient
                        : GradientOf(inputs[i]) ?? throw new InvalidOperationException($"{Graph.Value(inputs[i])} has no gradient.");
            }
            for (int o = 0; o < outputs.Count; o++)
                if (Plan.NeedsGradient(callee.Outputs[o]))
                    yield return o == 0 && outputGradient is not null ? outputGradient : GradientOf(outputs[o])!;
        }

        public void RepeatForward(RepeatOp repeat)
        {
            var stack = Graph.Stack(repeat.Stack);
            string layers = stack.Name + "Layers";
            string Arguments(Function body, string input) => string.Join(", ", new[] { "layer", input }
                .Concat(repeat.Inputs.Skip(1).Where((_, i) => Graph.Value(body.Inputs[i + 1]).Role == InputRole.None).Select(ViewOf)));
            if (stack.Variants.Count == 1)
            {
                var body = Graph.Function(stack.Variants[0]);
                string previous = ViewOf(body, body.Outputs[0], "layer - 1");
                Plain($"for (int layer = 0; layer < {layers}; layer++)");
                Line($"    {ForwardName(body)}({Arguments(body, $"layer == 0 ? {ViewOf(repeat.Input(0))} : {previous}")});", repeat);
                return;
            }
            // Layers that differ: each runs its variant's body, on the previous layer's output in that layer's buffers.
            using (Writer.Block($"for (int layer = 0; layer < {layers}; layer++)"))
            {
                Plain($"var input = layer == 0 ? {ViewOf(repeat.Input(0))} : {IlgpuPlan.LayerOutput(stack)}(layer - 1);");
                WriteVariantDispatch(stack, body => $"{ForwardName(body)}({Arguments(body, "input")});");
            }
        }

        /// <summary>One call per variant, chosen by the stack's variant table: "if (DecoderVariant[layer] == 0) ...; else ...;".</summary>
        private void WriteVariantDispatch(Stack stack, Func<Function, string> call)
        {
            for (int v = 0; v < stack.Variants.Count; v++)
            {
                string condition = v == stack.Variants.Count - 1 ? "else" : $"{(v == 0 ? "if" : "else if")} ({IlgpuPlan.VariantTable(stack)}[layer] == {v})";
                Plain(condition);
                Plain("    " + call(Graph.Function(stack.Variants[v])));
            }
        }

        /// <summary>
        /// The layers backwards. Each layer's input gradient is zeroed, filled by the layer and handed to the layer below
        /// as its output gradient; two buffers take turns, and the first layer's input gradient is added to the stack
        /// input's at the end.
        /// </summary>
        public void RepeatBackward(RepeatOp repeat)
        {
            var stack = Graph.Stack(repeat.Stack);
            string layers = stack.Name + "Layers";
            var even = Plan.CarriedGradients[(stack.Name, "Even")].Field;
            var odd = Plan.CarriedGradients[(stack.Name, "Odd")].Field;
            string Call(Function body, string input) => $"{BackwardName(body)}({string.Join(", ", BackwardArguments(body, repeat.Inputs.AsImmutableArray(), repeat.Outputs.AsImmutableArray(), "layer",
                carriedInput: input, carriedGradient: "dLayerInput", outputGradient: "dNext"))});";
            Plain($"var dNext = {GradientOf(repeat.Output())};");
            using (Writer.Block($"for (int layer = {layers} - 1; layer >= 0; layer--)"))
            {
                Plain($"var dLayerInput = (layer % 2 == 0 ? {even} : {odd})[0];");
                Plain("Zero(dLayerInput);");
                if (stack.Variants.Count == 1)
                {
                    var body = Graph.Function(stack.Variants[0]);
                    Plain(Call(body, $"layer == 0 ? {ViewOf(repeat.Input(0))} : {ViewOf(body, body.Outputs[0], "layer - 1")}"));
                }
                else
                {
                    Plain($"var input = layer == 0 ? {ViewOf(repeat.Input(0))} : {IlgpuPlan.LayerOutput(stack)}(layer - 1);");
                    WriteVariantDispatch(stack, body => Call(body, "input"));
                }
                Plain("dNext = dLayerInput;");
            }
            if (DIn(repeat, 0) is { } dInput)
                GradientLine($"Kernels.Accumulate({dInput}, dNext);", repeat.Input(0));
        }

        private static string Escape(string text) => text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
    }
}
