using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Emit.Ilgpu;
using ModelDsl.Generators.Emit.TorchSharp;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Families;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Validation;
using static ModelDsl.Generators.Validation.DiagnosticDescriptors;

namespace ModelDsl.Generators.Emit
{
    /// <summary>
    /// What a backend can generate is the op kinds (and tasks) its emitter implements. A valid declaration whose
    /// graph needs another gets an MDSL0100 warning at the attribute that asked for it, and no code for that backend,
    /// rather than code that silently ignores an attribute.
    /// </summary>
    internal static class BackendSupport
    {
        /// <summary>A backend: its name in diagnostics, the runtime type whose presence in a compilation turns it on, and its emitter.</summary>
        internal sealed record Backend(
            string Name,
            string RuntimeType,
            string HintSuffix,
            IReadOnlyCollection<OpKind> Ops,
            IReadOnlyCollection<ModelTask> Tasks,
            Func<ModelGraph, string> Emit,
            Func<ModelGraph, IEnumerable<(string Feature, FindingSite Origin)>> Unsupported);

        public static readonly Backend TorchSharp = new("TorchSharp", "ModelDsl.TorchSharp.TransformerModel", "TorchSharp.g.cs",
            TorchSharpEmitter.SupportedOps, TorchSharpEmitter.SupportedTasks, TorchSharpEmitter.Emit, _ => Array.Empty<(string, FindingSite)>());

        public static readonly Backend Ilgpu = new("ILGPU", "ModelDsl.Ilgpu.IlgpuTransformerModel", "Ilgpu.g.cs",
            IlgpuEmitter.SupportedOps, IlgpuEmitter.SupportedTasks, IlgpuEmitter.Emit, IlgpuEmitter.Unsupported);

        public static readonly IReadOnlyList<Backend> All = new[] { TorchSharp, Ilgpu };

        /// <summary>The MDSL0100 findings of a valid spec for a backend (none when it generates everything).</summary>
        public static IEnumerable<Finding> Gaps(ModelSpec spec, Backend backend) => Gaps(TransformerGraph.Build(spec), backend);

        public static IEnumerable<Finding> Gaps(ModelGraph graph, Backend backend)
        {
            var gaps = Gaps(graph, backend.Name, backend.Ops, backend.Tasks).ToList();
            if (gaps.Count == 0)
                foreach (var (feature, origin) in backend.Unsupported(graph).Distinct())
                    gaps.Add(new Finding(NotYetGenerated, origin, new object?[] { backend.Name, feature, graph.Spec.Name }));
            return gaps;
        }

        /// <summary>The MDSL0100 findings of a graph for a backend that implements <paramref name="ops"/> and <paramref name="tasks"/>.</summary>
        public static IEnumerable<Finding> Gaps(ModelGraph graph, string backend, IReadOnlyCollection<OpKind> ops, IReadOnlyCollection<ModelTask> tasks)
        {
            var name = graph.Spec.Name;
            if (!tasks.Contains(graph.Task))
            {
                yield return new Finding(NotYetGenerated, FindingSite.On(graph.Spec.Family.ToString()), new object?[] { backend, Describe(graph.Task), name });
                yield break;
            }
            var missing = graph.AllOps().Select(p => p.Op).Where(op => !ops.Contains(op.Kind));
            foreach (var group in missing.GroupBy(op => (Feature: Describe(op.Kind), op.Origin)))
                yield return new Finding(NotYetGenerated, group.Key.Origin, new object?[] { backend, group.Key.Feature, name });
        }

        private static string Describe(ModelTask task) => task switch
        {
            ModelTask.MaskedLanguageModel => "masked language models",
            ModelTask.SequenceClassification => "sequence classifiers",
            ModelTask.SequenceToSequence => "sequence-to-sequence models",
            ModelTask.ImageClassification => "image classifiers",
            _ => "causal language models",
        };

        /// <summary>What an op kind is called in a diagnostic.</summary>
        public static string Describe(OpKind kind) => kind switch
        {
            OpKind.LearnedPositions => "learned positions",
            OpKind.SinusoidalPositions => "sinusoidal positions",
            OpKind.Rotary => "rotary positions",
            OpKind.RelativePositionBias => "relative position bias",
            OpKind.Norm => "normalisation layers",
            OpKind.LowRank => "LoRA adapters",
            OpKind.GatedActivation => "gated feed-forward layers",
            OpKind.Router or OpKind.Experts or OpKind.RouterLoss => "mixture-of-experts layers",
            OpKind.PatchEmbedding => "patch embeddings",
            OpKind.ClassToken => "class tokens",
            OpKind.SelectToken => "first-token pooling",
            OpKind.CrossEntropy => "the cross-entropy loss",
            _ => kind.ToString().ToLowerInvariant() + " ops",
        };
    }
}
