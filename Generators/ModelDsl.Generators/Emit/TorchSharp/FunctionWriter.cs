using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis.CSharp;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Layouts;

namespace ModelDsl.Generators.Emit.TorchSharp
{
    /// <summary>
    /// Writes one graph function as one C# method: a variable per value (a name is reused, x = x + o, once its old
    /// value is dead), one line per op from its writer, a shape comment per line. Knows how to reach each parameter
    /// through the module tree, with one local for the container the function's parameters share.
    /// </summary>
    internal sealed class FunctionWriter
    {
        public const string Tensor = "global::TorchSharp.torch.Tensor";
        public const string State = "global::ModelDsl.TorchSharp.ForwardState";

        private readonly Dictionary<int, string> variables = new();
        private readonly Dictionary<string, int> holder = new();
        private readonly Dictionary<int, int> lastUse = new();
        private readonly HashSet<string> reserved;
        private string? localName;
        private string? localPath;
        private string? localExpression;
        private int index;

        public FunctionWriter(TorchSharpEmitter.Context context, Function function, CodeWriter writer)
        {
            Context = context;
            Function = function;
            Writer = writer;
            reserved = new HashSet<string>(StringComparer.Ordinal) { "layer", "state", "expert", "t" };
            for (int i = 0; i < function.Ops.Count; i++)
                foreach (var input in function.Ops[i].Inputs) lastUse[input] = i;
            foreach (var output in function.Outputs) lastUse[output] = int.MaxValue;
        }

        public TorchSharpEmitter.Context Context { get; }

        public ModelGraph Graph => Context.Graph;

        public Function Function { get; }

        public CodeWriter Writer { get; }

        /// <summary>Whether the method takes the layer index: its parameters are per layer.</summary>
        public bool TakesLayer => Function.Stack is not null;

        public void Write()
        {
            var op = Function.Ops;
            bool entry = TorchSharpEmitter.IsEntry(Graph, Function);
            foreach (var input in Function.Inputs) Declare(input, Graph.Value(input).Name);
            ChooseLocal();

            Writer.Line("/// <summary>" + Escape(Function.Summary) + "</summary>");
            var parameters = entry ? TorchSharpEmitter.EntryParameters(Graph, Function)
                : Function.Inputs.Select(i => Tensor + " " + variables[i])
                    .Concat(TakesLayer ? new[] { "int layer" } : Array.Empty<string>())
                    .Concat(Context.NeedsState(Function) ? new[] { State + " state" } : Array.Empty<string>());
            string returns = Function.Outputs.Count == 1 ? Tensor : "(" + string.Join(", ", Function.Outputs.Select(o => Tensor + " " + Graph.Value(o).Name)) + ")";
            string modifiers = entry ? "protected override" : "public";
            using (Writer.Block($"{modifiers} {returns} {Function.Name}({string.Join(", ", parameters)})"))
            {
                if (localName is not null) Writer.Line($"var {localName} = {localExpression};");
                for (index = 0; index < op.Count; index++)
                {
                    if (!TorchSharpOps.Writers.TryGetValue(op[index].Kind, out var write))
                        throw new NotSupportedException($"The TorchSharp backend has no writer for {op[index].Kind}.");
                    write(this, op[index]);
                }
                Writer.Line(Function.Outputs.Count == 1
                    ? $"return {Var(Function.Outputs[0])};"
                    : $"return ({string.Join(", ", Function.Outputs.Select(Var))});");
            }
        }

        // ---------------------------------------------------------------- variables

        /// <summary>The variable holding a value.</summary>
        public string Var(int value) => variables.TryGetValue(value, out var v) ? v
            : throw new InvalidOperationException($"Value {Graph.Value(value)} is used before it is computed in {Function.Name}.");

        /// <summary>The variable of op input <paramref name="i"/>.</summary>
        public string In(Op op, int i) => Var(op.Inputs[i]);

        /// <summary>The left-hand side for an op output: "var name" for a new variable, "name" to reuse a dead one.</summary>
        public string Out(Op op, int i = 0)
        {
            int value = op.Outputs[i];
            string hint = Graph.Value(value).Name;
            if (holder.TryGetValue(hint, out int old) && (!lastUse.TryGetValue(old, out int last) || last <= index) && !reserved.Contains(hint))
            {
                variables[value] = hint;
                holder[hint] = value;
                return hint;
            }
            return "var " + Declare(value, hint);
        }

        private string Declare(int value, string hint)
        {
            string name = Identifier(hint);
            for (int n = 2; holder.ContainsKey(name) || reserved.Contains(name) || name == localName; n++)
                name = Identifier(hint) + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
            variables[value] = name;
            holder[name] = value;
            return name;
        }

        private static string Identifier(string name)
            => SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;

        /// <summary>Writes an op's line with the shape of its first output as a comment.</summary>
        public void Line(string code, Op op, int output = 0)
        {
            Writer.Commented(code, Ir.Shape.Format(Graph.Value(op.Outputs[output]).Shape));
        }

        /// <summary>A line with no output comment (a loop, a side effect).</summary>
        public void Plain(string code) => Writer.Line(code);

        // ---------------------------------------------------------------- parameters

        public Parameter Parameter(Op op, int i) => Graph.Parameter(op.Parameter(i));

        /// <summary>The module holding an op's parameter <paramref name="i"/> ("attn.c_attn").</summary>
        public string Module(Op op, int i) => Access(Parameter(op, i).ModulePath, Parameter(op, i));

        /// <summary>The tensor itself ("attn.c_attn.weight", "vit.embeddings.cls_token").</summary>
        public string TensorOf(Op op, int i)
        {
            var p = Parameter(op, i);
            var node = Context.Tree.NodeOf(p);
            string owner = Access(p.ModulePath, p);
            // TorchSharp's modules declare their tensors nullable; the graph says they exist.
            return owner + "." + p.Name + (node.Category == ModuleCategory.Container ? "" : "!");
        }

        /// <summary>Whether the op's weight and bias (if any) are the own tensors of one linear/norm/embedding module.</summary>
        public bool OwnModule(Op op)
        {
            var weight = Parameter(op, 0);
            var node = Context.Tree.NodeOf(weight);
            if (node.Category is not (ModuleCategory.Leaf or ModuleCategory.AdaptedLeaf) || weight.Name != "weight"
                || node.Kind is not (ModuleKind.Linear or ModuleKind.Conv1D)) return false;
            if (!op.HasParameter(1)) return !node.Parameters.Any(p => p.Name == "bias");
            return Context.Tree.NodeOf(Parameter(op, 1)) == node;
        }

        /// <summary>
        /// The C# expression reaching a module path: fields by name, "[layer]" for "{layer}", a literal index where the
        /// parameter's own path has one (T5's "block.0"), "!" after optional modules; shortened by the function's local.
        /// </summary>
        public string Access(string modulePath, Parameter? parameter)
        {
            if (modulePath.Length == 0) return "this";
            var own = (parameter?.ModulePath ?? modulePath).Split('.');
            var segments = modulePath.Split('.');
            var node = Context.Tree.Root;
            var text = new System.Text.StringBuilder();
            string? prefix = localPath is not null && (modulePath == localPath || modulePath.StartsWith(localPath + ".", StringComparison.Ordinal)) ? localPath : null;
            for (int i = 0; i < segments.Length; i++)
            {
                string segment = own.Length > i && int.TryParse(own[i], out _) && node.Children.Any(c => c.Segment == CheckpointLayout.LayerIndex)
                    ? CheckpointLayout.LayerIndex : segments[i];
                node = node.Children.First(c => c.Segment == segment);
                if (prefix is not null && i == prefix.Split('.').Length - 1)
                {
                    text.Clear().Append(localName);
                    continue;
                }
                if (node.IsIndex)
                    text.Append('[').Append(int.TryParse(own[i], out _) ? own[i] : segment == CheckpointLayout.LayerIndex ? "layer" : "expert").Append(']');
                else
                    text.Append(text.Length == 0 ? "" : ".").Append(node.FieldName);
                // Optional modules, and a linear module's LoRA adapters, are nullable fields.
                if (node.IsOptional || node.Parent?.Category == ModuleCategory.AdaptedLeaf) text.Append('!');
            }
            return text.ToString();
        }

        /// <summary>One local for the deepest module all of the function's parameters share, when that saves repetition.</summary>
        private void ChooseLocal()
        {
            var paths = Function.Ops.SelectMany(o => o.Parameters.Where(p => p >= 0))
                .Select(p => Graph.Parameter(p).ModulePath.Split('.')).ToList();
            if (paths.Count == 0) return;
            int common = 0;
            while (paths.All(p => p.Length > common && p[common] == paths[0][common])) common++;
            if (common < 2) return;
            var segments = paths[0].Take(common).ToArray();
            // A literal layer index ("block.0", T5's shared relative bias) is not what the other layers share.
            var node = Context.Tree.Root;
            foreach (var segment in segments)
            {
                if (node.Children.Any(c => c.Segment == CheckpointLayout.LayerIndex) && int.TryParse(segment, out _)) return;
                node = node.Children.First(c => c.Segment == segment);
            }
            string path = string.Join(".", segments);
            string last = segments.Last();
            string name = last == CheckpointLayout.LayerIndex ? "block" : last == CheckpointLayout.ExpertIndex ? "expertModule"
                : char.ToLowerInvariant(last[0]) + last.Substring(1);
            if (!SyntaxFacts.IsValidIdentifier(name) || SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None
                || holder.ContainsKey(name) || reserved.Contains(name)
                || Function.Ops.SelectMany(o => o.Outputs).Any(o => Graph.Value(o).Name == name))
                name = "p";
            localExpression = Access(path, null);
            localPath = path;
            localName = name;
        }

        private static string Escape(string text) => text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
    }
}
