using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Layouts;
using ModelDsl.Generators.Spec;
using static ModelDsl.Generators.Helpers.CodeWriter;

namespace ModelDsl.Generators.Emit.Common
{
    /// <summary>What every backend's model class states the same way: the declaration's sizes as constants, and the checkpoint names of tied copies.</summary>
    internal static class ModelConstants
    {
        /// <summary>The declaration's sizes as public constants, the names generated code and shape comments use.</summary>
        public static void Write(CodeWriter writer, ModelGraph graph)
        {
            var spec = graph.Spec;
            var d = new Dims(spec);
            writer.Line("// The declaration's sizes: the code below is specialised for them.");
            void Int(string name, int value) => writer.Line($"public const int {name} = {Literal(value)};");
            void Double(string name, double value) => writer.Line($"public const double {name} = {Literal(value)};");
            if (spec.Vocab > 0) Int("Vocab", spec.Vocab);
            if (spec.Context > 0) Int("Context", spec.Context);
            if (spec.Family == ModelFamily.VisionEncoder)
            {
                Int("ImageSize", spec.ImageSize);
                Int("PatchSize", spec.PatchSize);
                Int("Channels", spec.Channels);
                Int("Patches", d.Patches.Size);
            }
            Int("Hidden", spec.Hidden);
            Int("Heads", spec.Heads);
            if (spec.KvHeads != spec.Heads) Int("KvHeads", spec.KvHeads);
            Int("HeadDim", spec.HeadDim);
            Int("Inner", spec.Inner);
            foreach (var stack in graph.Stacks) Int(stack.Name + "Layers", stack.Layers);
            if (spec.Classes > 0) Int("Classes", spec.Classes);
            if (spec.Embeddings.SegmentTypes is int segments) Int("Segments", segments);
            if (spec.Positions.Kind == PositionKind.Relative)
            {
                Int("Buckets", spec.Positions.RelativeBuckets);
                Int("MaxDistance", spec.Positions.RelativeMaxDistance);
            }
            if (spec.Experts is { } moe)
            {
                Int("Experts", moe.Experts ?? 0);
                Int("TopK", moe.TopK);
                Double("AuxLossWeight", moe.AuxLossWeight);
                Double("ZLossWeight", moe.ZLossWeight);
            }
            if (spec.Lora is { } lora)
            {
                Int("Rank", lora.Rank);
                Double("LoraAlpha", lora.Alpha);
                writer.Line("public const double LoraScale = LoraAlpha / Rank;");
            }
            Double("Epsilon", spec.Norm.Epsilon);
            if (spec.Positions.Kind == PositionKind.Rotary) Double("RotaryBase", spec.Positions.RotaryBase);
            Double("DropoutRate", spec.DropoutRate);
        }

        /// <summary>The model's CheckpointNames (ModelDsl.Checkpoints, shared by the backends' loaders): how the layout's files name its tensors.</summary>
        public static void WriteCheckpointNames(CodeWriter writer, ModelGraph graph)
        {
            var layout = CheckpointLayout.Of(graph.Spec);
            var tied = TiedCopies(graph, layout).ToList();
            writer.Line($"/// <summary>How {graph.Layout} checkpoints name this model's tensors: the optional prefix, buffers to skip, copies of tied tensors.</summary>");
            writer.Line("protected override global::ModelDsl.Checkpoints.CheckpointNames CheckpointNames { get; } = new(");
            writer.Line($"    layout: {Literal(graph.Layout)},");
            writer.Line($"    optionalPrefix: {(layout.OptionalPrefix is null ? "null" : Literal(layout.OptionalPrefix))},");
            writer.Line($"    ignoredSuffixes: new string[] {{ {string.Join(", ", layout.IgnoredSuffixes.Select(Literal))} }},");
            bool renames = !layout.RenamedSuffixes.IsEmpty; // an optional argument: layouts without renames keep their code
            writer.Line($"    tiedCopies: new (string Copy, string Of)[] {{ {string.Join(", ", tied.Select(t => $"({Literal(t.Copy)}, {Literal(t.Of)})"))} }}{(renames ? "," : ");")}");
            if (renames)
                writer.Line($"    renamedSuffixes: new (string Legacy, string Current)[] {{ {string.Join(", ", layout.RenamedSuffixes.Select(r => $"({Literal(r.Legacy)}, {Literal(r.Current)})"))} }});");
        }

        /// <summary>Checkpoint names that must equal one of this model's tensors (tied heads, T5's per-stack embedding copies).</summary>
        public static IEnumerable<(string Copy, string Of)> TiedCopies(ModelGraph graph, CheckpointLayout layout)
        {
            string? PathOf(Role role, string name = "weight")
            {
                string path;
                try { path = layout.Path(role, ""); }
                catch (ArgumentOutOfRangeException) { return null; }
                return graph.Parameters.FirstOrDefault(p => p.Path == path || p.ModulePath == path && p.Name == name)?.Path;
            }
            foreach (var (name, role) in layout.TiedCopies(graph.Spec))
                if (PathOf(role) is { } of) yield return (name, of);
            if (graph.Spec.Embeddings.Tied && graph.Task != ModelTask.SequenceClassification && PathOf(Role.TokenEmbedding) is { } table)
                yield return (layout.Path(Role.LmHead, "") + ".weight", table);
        }
    }
}
