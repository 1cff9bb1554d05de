using System.Globalization;
using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Analysis;
using ModelDsl.Generators.Spec;
using static ModelDsl.Generators.Helpers.CodeWriter;

namespace ModelDsl.Generators.Emit.Common
{
    /// <summary>Emits the backend-independent part: the compile-time model card, its numbers derived from the op graph.</summary>
    internal static class ModelCardEmitter
    {
        public static string Emit(ModelGraph graph)
        {
            var spec = graph.Spec;
            var schedule = Schedule.Of(graph);
            var flops = Flops.Forward(schedule);
            var plan = BufferPlan.Of(schedule);
            var activations = CostTerms.Merge(plan.Buffers.Where(b => b.Kind != BufferKind.Input)
                .Select(b => b.Elements with { Coefficient = b.Elements.Coefficient * b.BytesPerElement }));
            return TypeEmitter.Write(spec.Type, "Model card: shapes, parameter count and costs, derived from the op graph at compile time.",
                System.Array.Empty<string>(), writer =>
                {
                    writer.Line("/// <summary>");
                    writer.Line($"/// {spec.Name}: {graph.ParameterCount.ToString("N0", CultureInfo.InvariantCulture)} parameters ({spec.Family}, {graph.Layout} names, hidden {Literal(spec.Hidden)}, {Literal(spec.Heads)} heads, {Literal(spec.Stacks.Total)} layers).");
                    writer.Line("/// </summary>");
                    writer.Line("public static global::ModelDsl.ModelCard Card { get; } = new global::ModelDsl.ModelCard(");
                    writer.Line($"    name: {Literal(spec.Name)}, family: {Literal(spec.Family.ToString())}, layout: {Literal(graph.Layout)}, task: {Literal(graph.Task.ToString())},");
                    writer.Line($"    vocab: {Literal(spec.Vocab)}, context: {Literal(spec.Context)}, hidden: {Literal(spec.Hidden)},");
                    writer.Line($"    heads: {Literal(spec.Heads)}, kvHeads: {Literal(spec.KvHeads)}, headDim: {Literal(spec.HeadDim)},");
                    writer.Line($"    encoderLayers: {Literal(spec.Stacks.EncoderLayers ?? 0)}, decoderLayers: {Literal(spec.Stacks.DecoderLayers ?? 0)}, inner: {Literal(spec.Inner)}, classes: {Literal(spec.Classes)},");
                    writer.Line($"    segmentTypes: {Literal(spec.Embeddings.SegmentTypes ?? 0)}, imageSize: {Literal(spec.ImageSize)}, patchSize: {Literal(spec.PatchSize)}, channels: {Literal(spec.Channels)},");
                    writer.Line($"    experts: {Literal(spec.Experts?.Experts ?? 0)}, topK: {Literal(spec.Experts?.TopK ?? 0)},");
                    writer.Line($"    parameterCount: {Literal(graph.ParameterCount)}L,");
                    writer.Line("    // Forward FLOPs of the matrix products (2 per multiply-add), per op, in batch (B), time (T) and source time (S).");
                    Terms(writer, "forwardFlops", flops, last: false);
                    writer.Line("    // Activation bytes a training step keeps: outputs the backward reads (one per layer), reused scratch, statistics.");
                    Terms(writer, "activationBytes", activations, last: true);
                });
        }

        private static void Terms(CodeWriter writer, string name, EquatableArray<CostTerm> terms, bool last)
        {
            writer.Line($"    {name}: new global::ModelDsl.CostTerm[]");
            writer.Line("    {");
            foreach (var t in terms)
            {
                var powers = string.Concat(
                    t.Batch > 0 ? ", batch: " + Literal(t.Batch) : "",
                    t.Time > 0 ? ", time: " + Literal(t.Time) : "",
                    t.SourceTime > 0 ? ", sourceTime: " + Literal(t.SourceTime) : "");
                writer.Line($"        new global::ModelDsl.CostTerm({Literal(t.Name)}, {Literal(t.Coefficient)}L{powers}),");
            }
            writer.Line(last ? "    });" : "    },");
        }
    }
}
