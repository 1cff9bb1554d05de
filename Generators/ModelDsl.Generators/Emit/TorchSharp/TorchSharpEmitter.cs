using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using ModelDsl.Generators.Emit.Common;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Analysis;
using ModelDsl.Generators.Ir.Layouts;
using ModelDsl.Generators.Spec;
using static ModelDsl.Generators.Helpers.CodeWriter;

namespace ModelDsl.Generators.Emit.TorchSharp
{
    /// <summary>
    /// Emits a model's op graph as TorchSharp code: a class deriving from the runtime base of its task, holding the
    /// Hugging Face module tree, with one method per graph function written op by op by <see cref="TorchSharpOps"/>.
    /// Nothing here knows a family or a checkpoint name: both come from the graph. Generated code is fully qualified
    /// (global::) or uses members it inherits, so a user's types named Tensor, Device, F or nn cannot capture it.
    /// </summary>
    internal static class TorchSharpEmitter
    {
        public const string Runtime = "global::ModelDsl.TorchSharp.";

        /// <summary>The op kinds this backend implements: a graph using any other gets MDSL0100.</summary>
        public static IReadOnlyCollection<OpKind> SupportedOps => TorchSharpOps.Supported;

        /// <summary>The tasks whose runtime base class exists.</summary>
        public static IReadOnlyCollection<ModelTask> SupportedTasks => TorchSharpOps.Tasks;

        /// <summary>What a generated class and its methods share while being written.</summary>
        internal sealed class Context
        {
            private readonly Dictionary<string, bool> needsState = new();

            public Context(ModelGraph graph, ModuleTree tree)
            {
                Graph = graph;
                Tree = tree;
            }

            public ModelGraph Graph { get; }

            public ModuleTree Tree { get; }

            public string AttentionOptionsName(Function function) => function.Name + "Options";

            /// <summary>Whether a function reads the forward state (cache, position offset, auxiliary losses), itself or through calls.</summary>
            public bool NeedsState(Function function)
            {
                if (needsState.TryGetValue(function.Name, out bool known)) return known;
                needsState[function.Name] = false;
                bool result = function.Name != ModelGraph.LossFunction && (IsEntry(Graph, function) || function.Ops.Any(op => op switch
                {
                    AttentionOp or SinusoidalPositionsOp or RotaryOp or RelativePositionBiasOp or RouterOp or RouterLossOp => true,
                    LearnedPositionsOp => Graph.Parameter(op.Parameter(0)).Shape.Count == 2,
                    CallOp call => NeedsState(Graph.Function(call.Function)),
                    RepeatOp repeat => Graph.Stack(repeat.Stack).Variants.Any(v => NeedsState(Graph.Function(v))),
                    _ => false,
                }));
                needsState[function.Name] = result;
                return result;
            }
        }

        private static readonly Dictionary<(ModelTask, string), string[]> Entries = new()
        {
            [(ModelTask.CausalLanguageModel, ModelGraph.ForwardFunction)] = new[] { "ids" },
            [(ModelTask.MaskedLanguageModel, ModelGraph.ForwardFunction)] = new[] { "ids", "segments", "mask" },
            [(ModelTask.SequenceClassification, ModelGraph.ForwardFunction)] = new[] { "ids", "segments", "mask" },
            [(ModelTask.SequenceToSequence, "Encode")] = new[] { "source", "sourceMask" },
            [(ModelTask.SequenceToSequence, "Decode")] = new[] { "ids", "encoded", "sourceMask" },
            [(ModelTask.SequenceToSequence, ModelGraph.ForwardFunction)] = new[] { "source", "sourceMask", "ids" },
            [(ModelTask.ImageClassification, ModelGraph.ForwardFunction)] = new[] { "pixels" },
        };

        private static readonly string[] LossParameters = { "logits", "targets" };

        /// <summary>Whether a function overrides one of the runtime base's abstract methods (then the base fixes its signature).</summary>
        public static bool IsEntry(ModelGraph graph, Function function)
            => function.Name == ModelGraph.LossFunction || Entries.ContainsKey((graph.Task, function.Name));

        private static string[] EntryNames(ModelGraph graph, Function function)
            => function.Name == ModelGraph.LossFunction ? LossParameters : Entries[(graph.Task, function.Name)];

        public static IEnumerable<string> EntryParameters(ModelGraph graph, Function function)
        {
            var names = EntryNames(graph, function);
            var missing = function.Inputs.Select(i => graph.Value(i).Name).Except(names).ToList();
            if (missing.Count > 0)
                throw new InvalidOperationException($"{function.Name}'s inputs {string.Join(", ", missing)} are not parameters of the runtime's {function.Name}.");
            var parameters = names.Select(n => FunctionWriter.Tensor + " " + n);
            return function.Name == ModelGraph.LossFunction ? parameters : parameters.Append(FunctionWriter.State + " state");
        }

        /// <summary>A call of an entry function: the arguments in the base's order (absent ones cannot occur between entries).</summary>
        public static IEnumerable<string> EntryArguments(ModelGraph graph, Function callee, IReadOnlyList<string> arguments)
        {
            var byName = callee.Inputs.Select((input, i) => (graph.Value(input).Name, Argument: arguments[i])).ToDictionary(p => p.Name, p => p.Argument);
            return EntryNames(graph, callee).Select(n => byName[n]).Append("state");
        }

        public static string Emit(ModelGraph graph)
        {
            var spec = graph.Spec;
            var schedule = Schedule.Of(graph);
            var used = schedule.Forward.SelectMany(s => s.Op.Parameters).Where(p => p >= 0).Distinct().ToList();
            var order = used.Concat(graph.Parameters.Select(p => p.Id).Except(used)).Select(graph.Parameter);
            var context = new Context(graph, new ModuleTree(graph, order));
            return TypeEmitter.Write(spec.Type,
                $"TorchSharp backend: the op graph of {spec.Name} as TorchSharp code, parameters under Hugging Face {graph.Layout} names; libtorch autograd computes the backward pass.",
                Array.Empty<string>(), writer =>
                {
                    writer.Line($"/// <summary>Creates {spec.Name} on the TorchSharp backend, initialised as {graph.Layout} is.</summary>");
                    writer.Line("/// <param name=\"device\">Where the parameters live; CPU when null.</param>");
                    using (writer.Block("public static TorchSharpModel CreateTorchSharp(global::TorchSharp.torch.Device? device = null)"))
                    {
                        writer.Line("var model = new TorchSharpModel();");
                        writer.Line("if (device is not null) global::TorchSharp.ModuleExtensionMethods.to(model, device);");
                        writer.Line("return model;");
                    }
                    writer.Line();
                    WriteModel(writer, context);
                });
        }

        private static string BaseClass(ModelTask task) => Runtime + task switch
        {
            ModelTask.CausalLanguageModel => "CausalLanguageModel",
            ModelTask.MaskedLanguageModel => "MaskedLanguageModel",
            ModelTask.SequenceClassification => "SequenceClassificationModel",
            ModelTask.SequenceToSequence => "SequenceToSequenceModel",
            _ => "ImageClassificationModel",
        };

        private static void WriteModel(CodeWriter writer, Context context)
        {
            var graph = context.Graph;
            var spec = graph.Spec;
            writer.Line($"/// <summary>{spec.Name} on TorchSharp: {Words(graph.Task)} with Hugging Face {graph.Layout} parameter names and layouts.</summary>");
            using (writer.Block($"public sealed class TorchSharpModel : {BaseClass(graph.Task)}"))
            {
                WriteConstants(writer, context);
                writer.Line();
                foreach (var child in context.Tree.Root.Children) WriteField(writer, child);
                writer.Line();
                using (writer.Block($"public TorchSharpModel() : base({TypeEmitter.QualifiedName(spec.Type)}.Card)"))
                {
                    foreach (var child in context.Tree.Root.Children) writer.Line($"{child.FieldName} = {Construct(child, context)};");
                    writer.Line("RegisterComponents();");
                    writer.Line("ResetParameters();");
                }
                foreach (var function in ReadingOrder(graph))
                {
                    writer.Line();
                    new FunctionWriter(context, function, writer).Write();
                }
                writer.Line();
                WriteReset(writer, context);
                writer.Line();
                ModelConstants.WriteCheckpointNames(writer, context.Graph);
                foreach (var node in context.Tree.Classes())
                {
                    writer.Line();
                    WriteContainer(writer, node, context);
                }
            }
        }

        /// <summary>The functions in reading order (<see cref="FunctionOrder.Reachable"/>), then any the entry and the loss do not call.</summary>
        private static IEnumerable<Function> ReadingOrder(ModelGraph graph)
        {
            var order = FunctionOrder.Reachable(graph);
            var written = new HashSet<string>(order.Select(f => f.Name));
            return order.Concat(graph.Functions.Where(f => !written.Contains(f.Name)));
        }

        private static string Words(ModelTask task) => task switch
        {
            ModelTask.CausalLanguageModel => "a causal language model",
            ModelTask.MaskedLanguageModel => "a masked language model",
            ModelTask.SequenceClassification => "a sequence classifier",
            ModelTask.SequenceToSequence => "a sequence-to-sequence model",
            _ => "an image classifier",
        };

        // ================================================================ constants

        private static void WriteConstants(CodeWriter writer, Context context)
        {
            var graph = context.Graph;
            var spec = graph.Spec;
            ModelConstants.Write(writer, graph);
            if (spec.Experts is not null)
                writer.Line($"private static readonly {Runtime}RouterLossOptions RouterLossOptions = new(Experts, AuxLossWeight, ZLossWeight);");
            foreach (var stack in graph.Stacks.Where(s => s.Variants.Count > 1))
                writer.Line($"private static readonly int[] {stack.Name}LayerVariants = {{ {string.Join(", ", stack.VariantOfLayer.Select(v => Literal(v)))} }}; // {string.Join(", ", stack.Variants.Select((v, i) => i.ToString(CultureInfo.InvariantCulture) + ": " + v))}");
            foreach (var (function, op) in graph.AllOps().Where(p => p.Op is AttentionOp))
            {
                var a = (AttentionOp)op;
                writer.Line($"private static readonly {Runtime}AttentionOptions {context.AttentionOptionsName(function)} = new(");
                writer.Line($"    Heads, {(a.KvHeads == a.Heads ? "Heads" : "KvHeads")}, HeadDim, Causal: {Literal(a.Mask == AttentionMask.Causal)}, Window: {(a.Window is int w ? Literal(w) : "null")},");
                writer.Line($"    Scaled: {Literal(a.Scaled)}, Dropout: DropoutRate, Cache: {Runtime}AttentionCache.{a.Cache});");
            }
        }

        /// <summary>A dimension as a C# expression over the constants ("3*Hidden" is "3 * Hidden").</summary>
        public static string Expression(Dim dim) => dim.Expression;

        // ================================================================ module tree

        private static string FieldType(ModuleNode node) => node.Category switch
        {
            ModuleCategory.List => $"global::TorchSharp.Modules.ModuleList<{node.Children[0].ClassName}>",
            ModuleCategory.Container => node.ClassName,
            _ => node.Kind switch
            {
                ModuleKind.Linear => Runtime + "Linear",
                ModuleKind.Conv1D => Runtime + "Conv1D",
                ModuleKind.LayerNorm => "global::TorchSharp.Modules.LayerNorm",
                ModuleKind.RmsNorm => Runtime + "RmsNorm",
                ModuleKind.Embedding => "global::TorchSharp.Modules.Embedding",
                ModuleKind.PatchConv => "global::TorchSharp.Modules.Conv2d",
                _ => throw new InvalidOperationException($"'{node.Path}' has no module kind."),
            },
        };

        private static void WriteField(CodeWriter writer, ModuleNode node)
        {
            if (node.NeedsComponentName)
                writer.Line($"[global::TorchSharp.Utils.ComponentName(Name = {Literal(node.Segment)})]");
            string type = FieldType(node) + (node.IsOptional ? "?" : "");
            string shapes = node.Category is ModuleCategory.Leaf or ModuleCategory.AdaptedLeaf
                ? " // " + string.Join(", ", node.Parameters.Select(p => p.Name + " " + Ir.Shape.Format(p.Shape)))
                : "";
            writer.Line($"public readonly {type} {node.FieldName};{shapes}");
        }

        private static void WriteBare(CodeWriter writer, Parameter parameter)
            => writer.Line($"public readonly global::TorchSharp.Modules.Parameter {parameter.Name}; // {Ir.Shape.Format(parameter.Shape)}");

        /// <summary>The expression that builds a module (with "layer" in scope inside a list element's constructor).</summary>
        private static string Construct(ModuleNode node, Context context)
        {
            string Make()
            {
                switch (node.Category)
                {
                    case ModuleCategory.List:
                        var element = node.Children[0];
                        string count = element.Segment == CheckpointLayout.LayerIndex ? element.Stack + "Layers" : "Experts";
                        string index = NeedsLayer(element) ? "layerIndex" : "_";
                        return $"ModuleList({count}, {index} => new {element.ClassName}({(NeedsLayer(element) ? "layerIndex" : "")}))";
                    case ModuleCategory.Container:
                        return $"new {node.ClassName}({(NeedsLayer(node) ? "layerIndex" : "")})";
                    default:
                        return Leaf(node);
                }
            }
            string make = Make();
            return node.IsOptional ? $"{Presence(node, context)} ? {make} : null" : make;
        }

        private static string Leaf(ModuleNode node)
        {
            var weight = node.Parameters.First(p => p.Name == "weight");
            bool bias = node.Parameters.Any(p => p.Name == "bias");
            string Dim(int axis) => Expression(weight.Shape[axis]);
            string adapters = node.Category == ModuleCategory.AdaptedLeaf ? ", loraRank: Rank, loraAlpha: LoraAlpha" : "";
            return node.Kind switch
            {
                ModuleKind.Linear => $"new {Runtime}Linear({Dim(1)}, {Dim(0)}, bias: {Literal(bias)}{adapters})",
                ModuleKind.Conv1D => $"new {Runtime}Conv1D({Dim(0)}, {Dim(1)}, bias: {Literal(bias)}{adapters})",
                ModuleKind.LayerNorm => $"global::TorchSharp.torch.nn.LayerNorm({Dim(0)}, Epsilon)",
                ModuleKind.RmsNorm => $"new {Runtime}RmsNorm({Dim(0)}, Epsilon)",
                ModuleKind.Embedding => $"global::TorchSharp.torch.nn.Embedding({Dim(0)}, {Dim(1)})",
                ModuleKind.PatchConv => $"global::TorchSharp.torch.nn.Conv2d({Dim(1)}, {Dim(0)}, kernel_size: {Dim(2)}, stride: {Dim(2)})",
                _ => throw new InvalidOperationException($"'{node.Path}' is not a leaf module."),
            };
        }

        /// <summary>Whether building a module needs its layer's index: it is in a stack's layer and something below exists in only some layers.</summary>
        private static bool NeedsLayer(ModuleNode node)
        {
            bool inLayer = false;
            for (var n = node; n is not null; n = n.Parent) inLayer |= n.Segment == CheckpointLayout.LayerIndex;
            return inLayer && node.Descendants().Any(d => d.IsOptional);
        }

        /// <summary>The condition under which an optional module exists in layer "layer".</summary>
        private static string Presence(ModuleNode node, Context context)
        {
            if (node.Presence.Count == 1) return "layerIndex == " + Literal(node.Presence.Min);
            var stack = context.Graph.Stacks.First(s => Enumerable.Range(0, s.Variants.Count).Any(v => node.Presence.SetEquals(s.VariantOfLayer.Select((x, i) => (x, i)).Where(p => p.x == v).Select(p => p.i))));
            int variant = Enumerable.Range(0, stack.Variants.Count).First(v => node.Presence.SetEquals(stack.VariantOfLayer.Select((x, i) => (x, i)).Where(p => p.x == v).Select(p => p.i)));
            return $"{stack.Name}LayerVariants[layerIndex] == {Literal(variant)}";
        }

        private static void WriteContainer(CodeWriter writer, ModuleNode node, Context context)
        {
            writer.Line($"/// <summary>Hugging Face's {node.ClassName}: \"{node.Path}\".</summary>");
            using (writer.Block($"public sealed class {node.ClassName} : global::TorchSharp.torch.nn.Module"))
            {
                foreach (var parameter in node.Parameters) WriteBare(writer, parameter);
                foreach (var child in node.Children) WriteField(writer, child);
                writer.Line();
                using (writer.Block($"public {node.ClassName}({(NeedsLayer(node) ? "int layerIndex" : "")}) : base({Literal(node.ClassName)})"))
                {
                    foreach (var parameter in node.Parameters)
                        writer.Line($"{parameter.Name} = new global::TorchSharp.Modules.Parameter(global::TorchSharp.torch.zeros({string.Join(", ", parameter.Shape.Select(Expression))}));");
                    foreach (var child in node.Children) writer.Line($"{child.FieldName} = {Construct(child, context)};");
                    writer.Line("RegisterComponents();");
                }
            }
        }

        // ================================================================ initialisation

        private static void WriteReset(CodeWriter writer, Context context)
        {
            writer.Line($"/// <summary>{context.Graph.Layout}'s initialisation, parameter by parameter: N(0, std), norm gains 1, biases 0.</summary>");
            using (writer.Block("public override void ResetParameters()"))
            using (writer.Block("using (global::TorchSharp.torch.no_grad())"))
            {
                foreach (var child in context.Tree.Root.Children) WriteInit(writer, child, child.FieldName, 0);
            }
        }

        private static void WriteInit(CodeWriter writer, ModuleNode node, string access, int depth)
        {
            if (node.IsOptional)
            {
                using (writer.Block($"if ({access} is not null)"))
                    WriteInitBody(writer, node, access, depth);
                return;
            }
            if (node.Category == ModuleCategory.List)
            {
                string item = node.Children[0].Segment == CheckpointLayout.LayerIndex ? "block" : "expert";
                item += depth == 0 ? "" : depth.ToString(CultureInfo.InvariantCulture);
                using (writer.Block($"foreach (var {item} in {access})"))
                    WriteInit(writer, node.Children[0], item, depth + 1);
                return;
            }
            WriteInitBody(writer, node, access, depth);
        }

        private static void WriteInitBody(CodeWriter writer, ModuleNode node, string access, int depth)
        {
            if (node.Category == ModuleCategory.List)
            {
                string item = (node.Children[0].Segment == CheckpointLayout.LayerIndex ? "block" : "expert") + (depth == 0 ? "" : depth.ToString(CultureInfo.InvariantCulture));
                using (writer.Block($"foreach (var {item} in {access})"))
                    WriteInit(writer, node.Children[0], item, depth + 1);
                return;
            }
            foreach (var parameter in node.Parameters)
            {
                string target = access + "." + parameter.Name + (parameter.Name == "bias" && node.Category != ModuleCategory.Container ? "!" : "");
                string call = parameter.Init.Kind switch
                {
                    InitKind.Ones => $"InitOnes({target});",
                    InitKind.Zeros => $"InitZeros({target});",
                    _ => $"InitNormal({target}, {parameter.Init.StdExpression});",
                };
                writer.Commented(call, Ir.Shape.Format(parameter.Shape));
            }
            foreach (var child in node.Children)
                WriteInit(writer, child, child.IsIndex ? access
                    : access + "." + child.FieldName + (node.Category == ModuleCategory.AdaptedLeaf ? "!" : ""), depth);
        }
    }
}
