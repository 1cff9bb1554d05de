using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Emit.Common;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using static ModelDsl.Generators.Helpers.CodeWriter;

namespace ModelDsl.Generators.Emit.Ilgpu
{
    /// <summary>
    /// Writes a model's ILGPU class from its op graph, in the spirit of llm.c's train_gpt2.cu: the parameter table
    /// (Hugging Face names, shapes, initialisation), the buffer plan as fields, and one forward and one backward method
    /// per graph function, each a list of kernel launches. The kernels are the runtime's (ModelDsl.Ilgpu.Kernels),
    /// hand-written with hand-derived backward passes; this file decides which run, in what order, on which views.
    /// </summary>
    internal static class IlgpuEmitter
    {
        public static IReadOnlyCollection<OpKind> SupportedOps => IlgpuOps.Supported;

        public static IReadOnlyCollection<ModelTask> SupportedTasks => IlgpuOps.Tasks.Keys.ToList();

        /// <summary>What the op kinds alone cannot say this backend lacks: stacks that carry several values (no family builds one today).</summary>
        public static IEnumerable<(string Feature, Validation.FindingSite Origin)> Unsupported(ModelGraph graph)
        {
            foreach (var (_, op) in graph.AllOps().Where(p => p.Op is RepeatOp { Carried: not 1 }))
                yield return ("stacks that carry several values", op.Origin);
        }

        private const string Runtime = IlgpuOps.Runtime;

        public static string Emit(ModelGraph graph)
        {
            var spec = graph.Spec;
            var plan = new IlgpuPlan(graph);
            return TypeEmitter.Write(spec.Type,
                $"ILGPU backend: the op graph of {spec.Name} as a training schedule of ILGPU kernels (forward and hand-derived backward), parameters under Hugging Face {graph.Layout} names.",
                Array.Empty<string>(), writer =>
                {
                    writer.Line($"/// <summary>Creates {spec.Name} on the ILGPU backend (CUDA, or the CPU accelerator for checking), initialised as {graph.Layout} is.</summary>");
                    writer.Line("/// <param name=\"device\">The accelerator: <c>global::ModelDsl.Ilgpu.IlgpuDevice.Best()</c> picks CUDA when there is a GPU.</param>");
                    writer.Line("/// <param name=\"seed\">Seeds the initialisation.</param>");
                    writer.Line($"public static IlgpuModel CreateIlgpu({Runtime}IlgpuDevice device, ulong seed = 1337) => new(device, seed);");
                    writer.Line();
                    WriteModel(writer, plan);
                });
        }

        private static void WriteModel(CodeWriter writer, IlgpuPlan plan)
        {
            var graph = plan.Graph;
            var spec = graph.Spec;
            writer.Line($"/// <summary>{spec.Name} on ILGPU: {TaskSummary(graph.Task)} with Hugging Face {graph.Layout} parameter names; every kernel has a hand-derived backward.</summary>");
            using (writer.Block($"public sealed class IlgpuModel : {Runtime}{IlgpuOps.Tasks[graph.Task]}"))
            {
                ModelConstants.Write(writer, graph);
                writer.Line();
                WriteParameters(writer, graph);
                writer.Line();
                WriteBuffers(writer, plan);
                writer.Line();
                WriteVariants(writer, plan);
                using (writer.Block($"public IlgpuModel({Runtime}IlgpuDevice device, ulong seed = 1337) : base(device, {TypeEmitter.QualifiedName(spec.Type)}.Card, ParameterTable, seed)"))
                    writer.Line("Initialize();");
                writer.Line();
                WriteEntryPoints(writer, plan);
                foreach (var function in FunctionOrder.Reachable(graph))
                {
                    var functionWriter = new IlgpuFunctionWriter(plan, function, writer);
                    writer.Line();
                    functionWriter.WriteForward();
                    writer.Line();
                    functionWriter.WriteBackward();
                }
                writer.Line();
                ModelConstants.WriteCheckpointNames(writer, graph);
            }
        }

        private static string TaskSummary(ModelTask task) => task switch
        {
            ModelTask.CausalLanguageModel => "a causal language model",
            ModelTask.MaskedLanguageModel => "a masked language model",
            ModelTask.SequenceClassification => "a sequence classifier",
            ModelTask.ImageClassification => "an image classifier",
            ModelTask.SequenceToSequence => "an encoder-decoder (sequence to sequence)",
            _ => task.ToString(),
        };

        private static void WriteParameters(CodeWriter writer, ModelGraph graph)
        {
            writer.Line($"/// <summary>The parameters under Hugging Face {graph.Layout} names (\"{{layer}}\": one per layer), with {graph.Layout}'s initialisation.</summary>");
            writer.Line($"private static readonly {Runtime}ParameterInfo[] ParameterTable =");
            writer.Line("{");
            var adapters = new HashSet<int>(graph.AllOps().Where(p => p.Op is LowRankOp).SelectMany(p => p.Op.Parameters));
            foreach (var p in graph.Parameters)
            {
                string layers = p.Layers.Count == 0 ? "0" : p.Stack + "Layers";
                string shape = "new long[] { " + string.Join(", ", p.Shape.Select(d => d.Expression)) + " }";
                string name = Literal(p.Layers.Count == 0 ? p.PathAt(0) : p.Path);
                // A layer's experts lie together in the store: the expert kernels read the [Experts, ...] block.
                string experts = (p.Experts > 0 ? ", experts: Experts" : "") + (adapters.Contains(p.Id) ? ", adapter: true" : "")
                    // In a stack whose layers differ, some parameters belong to some layers only (Switch's experts, the dense layers' MLP).
                    + (p.Layers.Count > 0 && p.Layers.Count < graph.Stack(p.Stack!).Layers ? $", atLayers: new[] {{ {string.Join(", ", p.Layers.Select(l => Literal(l)))} }}" : "");
                string entry = p.Init.Kind switch
                {
                    InitKind.Normal => $"{Runtime}ParameterInfo.Normal({name}, {shape}, {layers}, {p.Init.StdExpression}{experts}),",
                    InitKind.Ones => $"{Runtime}ParameterInfo.Ones({name}, {shape}, {layers}{experts}),",
                    _ => $"{Runtime}ParameterInfo.Zeros({name}, {shape}, {layers}{experts}),",
                };
                writer.Line("    " + entry);
            }
            writer.Line("};");
        }

        private static void WriteBuffers(CodeWriter writer, IlgpuPlan plan)
        {
            writer.Line("// The buffer plan of the op graph: every tensor of a training step, allocated once for the largest Batch x Time");
            writer.Line("// seen and reused. Saved activations have a copy per layer (the backward pass reads them); gradients one copy.");
            foreach (var b in plan.All)
                writer.Commented($"private readonly {Runtime}DeviceBuffer {b.Field} = new({Literal(b.Name)}, {IlgpuPlan.Elements(b.Shape)}, copies: {(b.Copies > 1 ? Layers(plan.Graph, b.Copies) : "1")}{(b.Type == ElementType.Bool ? ", bytesPerElement: 1" : "")});",
                    Ir.Shape.Format(b.Shape) + (b.Copies > 1 ? " x" + Literal(b.Copies) : ""));
            writer.Line();
            writer.Line($"protected override global::System.Collections.Generic.IEnumerable<{Runtime}DeviceBuffer> Buffers => new[]");
            writer.Line("{");
            foreach (var chunk in plan.All.Select(b => b.Field).Select((f, i) => (f, i)).GroupBy(p => p.i / 8))
                writer.Line("    " + string.Join(", ", chunk.Select(p => p.f)) + ",");
            writer.Line("};");
        }

        /// <summary>
        /// For each stack whose layers differ (Switch's sparse layers between dense ones): the variant each layer runs, which
        /// copy of a variant's buffers each layer uses (where a variant keeps one per layer it runs), and a layer's output.
        /// </summary>
        private static void WriteVariants(CodeWriter writer, IlgpuPlan plan)
        {
            var graph = plan.Graph;
            foreach (var stack in graph.Stacks.Where(s => s.Variants.Count > 1))
            {
                string Table(IEnumerable<int> values) => "{ " + string.Join(", ", values.Select(v => Literal(v))) + " }";
                writer.Line($"// The {stack.Name} stack's layers differ: layer l runs {string.Join(" or ", stack.Variants.Select((v, i) => $"{v} ({i})"))} as {IlgpuPlan.VariantTable(stack)}[l] says.");
                writer.Line($"private static readonly int[] {IlgpuPlan.VariantTable(stack)} = {Table(stack.VariantOfLayer)};");
                foreach (var variant in stack.Variants.Where(v => plan.All.Any(b => b.Variant == v)))
                    writer.Commented($"private static readonly int[] {IlgpuPlan.CopyTable(variant)} = {Table(plan.VariantCopies[variant])};",
                        $"the copy of {variant}'s per-layer buffers layer l uses");
                writer.Line();
                writer.Line($"/// <summary>The output of layer <paramref name=\"layer\"/> of the {stack.Name} stack, in the buffers of the variant it runs.</summary>");
                writer.Line($"private {IlgpuFunctionWriter.View} {IlgpuPlan.LayerOutput(stack)}(int layer) => {IlgpuPlan.VariantTable(stack)}[layer] switch");
                writer.Line("{");
                var view = new IlgpuFunctionWriter(plan, graph.Forward, writer);
                for (int v = 0; v < stack.Variants.Count; v++)
                {
                    var body = graph.Function(stack.Variants[v]);
                    writer.Line($"    {(v == stack.Variants.Count - 1 ? "_" : Literal(v))} => {view.ViewOf(body, body.Outputs[0], "layer")},");
                }
                writer.Line("};");
                writer.Line();
            }
        }

        private static string Layers(ModelGraph graph, int copies)
            => graph.Stacks.FirstOrDefault(s => s.Layers == copies) is { } stack ? stack.Name + "Layers" : Literal(copies);

        private static void WriteEntryPoints(CodeWriter writer, IlgpuPlan plan)
        {
            var graph = plan.Graph;
            var forward = graph.Forward;
            var loss = graph.Loss;
            string logits = new IlgpuFunctionWriter(plan, forward, writer).ViewOf(forward.Outputs[0]);
            string dLogits = plan.Gradient(forward.Outputs[0])!.Field + "[0]";
            string lossView = new IlgpuFunctionWriter(plan, loss, writer).ViewOf(loss.Outputs[0]);

            writer.Line($"protected override {IlgpuFunctionWriter.View} LogitsOutput => {logits};");
            writer.Line();
            writer.Line($"protected override {IlgpuFunctionWriter.View} LossOutput => {lossView};");
            writer.Line();
            if (plan.RoutingStatistics is { } routing)
            {
                // Hugging Face's load-balancing loss concatenates every MoE layer's router logits: its means run over all routed tokens.
                var perLayer = plan.Schedule.Forward.Where(s => s.Op is RouterLossOp)
                    .GroupBy(s => IlgpuPlan.Rows(graph.Value(s.Op.Input(0)).Shape))
                    .Select(g => g.Count() == 1 ? g.Key : $"{Literal(g.Count())} * {g.Key}");
                writer.Line("/// <summary>Tokens routed in a pass, over every mixture-of-experts layer: the load-balancing loss's means run over them all.</summary>");
                writer.Line($"private int RoutedTokens => {string.Join(" + ", perLayer)};");
                writer.Line();
                writer.Line("/// <summary>The forward pass: token ids to logits; each MoE layer adds its routing to the statistics.</summary>");
                using (writer.Block("protected override void Forward()"))
                {
                    writer.Line($"Zero({routing.Field}[0]);");
                    writer.Line($"{IlgpuFunctionWriter.ForwardName(forward)}();");
                }
                writer.Line();
                var routerLoss = (RouterLossOp)plan.Schedule.Forward.First(s => s.Op is RouterLossOp).Op;
                writer.Line("/// <summary>The task loss of the logits against the targets, plus the routing loss (load balancing" + (routerLoss.ZWeight > 0 ? " and z-loss" : "") + ") of the whole pass.</summary>");
                using (writer.Block("protected override void LossForward()"))
                {
                    writer.Line($"{IlgpuFunctionWriter.ForwardName(loss)}({logits});");
                    writer.Line($"Kernels.RoutingLoss({lossView}, {routing.Field}[0], RoutedTokens, Experts, TopK, {IlgpuOps.RouterLossWeights(graph, routerLoss)});");
                }
            }
            else
            {
                writer.Line("/// <summary>The forward pass: token ids to logits.</summary>");
                writer.Line($"protected override void Forward() => {IlgpuFunctionWriter.ForwardName(forward)}();");
                writer.Line();
                writer.Line("/// <summary>The task loss of the logits against the targets.</summary>");
                writer.Line($"protected override void LossForward() => {IlgpuFunctionWriter.ForwardName(loss)}({logits});");
            }
            writer.Line();
            writer.Line("/// <summary>The backward pass: the loss's gradient with respect to the logits, then back through the forward pass.</summary>");
            using (writer.Block("protected override void Backward()"))
            {
                writer.Line($"Zero({dLogits});");
                writer.Line($"{IlgpuFunctionWriter.BackwardName(loss)}({logits}, {dLogits});");
                writer.Line($"{IlgpuFunctionWriter.BackwardName(forward)}({dLogits});");
            }
        }
    }
}
