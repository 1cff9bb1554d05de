using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace ModelDsl.Generators.Tests
{
    /// <summary>An edit that does not touch a declaration must not redo its work (Roslyn's incremental cookbook).</summary>
    public sealed class IncrementalityTests
    {
        private const string Model = """
            using ModelDsl;
            namespace App
            {
                [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
                [FeedForward(Inner = 64, Activation = Activation.GeluTanh)]
                [LearnedPositions, PreNorm, TiedEmbeddings]
                public partial record TinyGpt;
            }
            """;

        private const string Other = """
            namespace App
            {
                public static class Helpers { public static int Answer() => 42; }
            }
            """;

        [Fact]
        public void Editing_an_unrelated_file_leaves_every_step_cached()
        {
            var compilation = GeneratorHarness.Compilation(true, Model, Other);
            var driver = GeneratorHarness.Driver(trackSteps: true).RunGenerators(compilation);

            var edited = compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.Last(),
                CSharpSyntaxTree.ParseText(Other.Replace("42", "43 /* edited */"), GeneratorHarness.ParseOptions, path: "Source1.cs"));
            var result = driver.RunGenerators(edited).GetRunResult().Results.Single();

            AssertAllOutputs(result, ModelGeneratorStepNames.Parse, IncrementalStepRunReason.Cached, IncrementalStepRunReason.Unchanged);
            AssertAllOutputs(result, ModelGeneratorStepNames.BuildGraph, IncrementalStepRunReason.Cached, IncrementalStepRunReason.Unchanged);
            Assert.All(result.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs),
                output => Assert.Equal(IncrementalStepRunReason.Cached, output.Reason));
        }

        [Fact]
        public void Editing_a_comment_in_the_declaration_file_reparses_but_emits_nothing_new()
        {
            var compilation = GeneratorHarness.Compilation(true, Model, Other);
            var driver = GeneratorHarness.Driver(trackSteps: true).RunGenerators(compilation);

            var edited = compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.First(),
                CSharpSyntaxTree.ParseText(Model.Replace("namespace App", "// a comment\nnamespace App"), GeneratorHarness.ParseOptions, path: "Source0.cs"));
            var result = driver.RunGenerators(edited).GetRunResult().Results.Single();

            // The spec is recomputed (the file changed) but compares equal, so everything after it is cached.
            AssertAllOutputs(result, ModelGeneratorStepNames.Parse, IncrementalStepRunReason.Unchanged, IncrementalStepRunReason.Cached);
            AssertAllOutputs(result, ModelGeneratorStepNames.BuildGraph, IncrementalStepRunReason.Cached, IncrementalStepRunReason.Unchanged);
            Assert.All(result.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs),
                output => Assert.Equal(IncrementalStepRunReason.Cached, output.Reason));
        }

        [Fact]
        public void Changing_a_dimension_regenerates_the_model()
        {
            var compilation = GeneratorHarness.Compilation(true, Model, Other);
            var driver = GeneratorHarness.Driver(trackSteps: true).RunGenerators(compilation);

            var edited = compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.First(),
                CSharpSyntaxTree.ParseText(Model.Replace("Layers = 2", "Layers = 3"), GeneratorHarness.ParseOptions, path: "Source0.cs"));
            var result = driver.RunGenerators(edited).GetRunResult().Results.Single();

            AssertAllOutputs(result, ModelGeneratorStepNames.BuildGraph, IncrementalStepRunReason.Modified);
        }

        [Fact]
        public void Pipeline_models_hold_no_symbols_or_syntax()
        {
            var compilation = GeneratorHarness.Compilation(true, Model);
            var result = GeneratorHarness.Driver(trackSteps: true).RunGenerators(compilation).GetRunResult().Results.Single();

            foreach (var step in result.TrackedSteps.Where(s => s.Key.StartsWith("ModelDsl.")).SelectMany(s => s.Value))
            foreach (var (value, _) in step.Outputs)
                Assert.False(value is ISymbol or SyntaxNode or Compilation, $"{step.Name} outputs a {value.GetType().Name}");
        }

        private static void AssertAllOutputs(GeneratorRunResult result, string step, params IncrementalStepRunReason[] allowed)
        {
            Assert.True(result.TrackedSteps.ContainsKey(step), $"step {step} did not run");
            var reasons = result.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason).ToList();
            Assert.NotEmpty(reasons);
            Assert.All(reasons, reason => Assert.Contains(reason, allowed));
        }
    }
}
