using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace ModelDsl.Analyzers.Tests.Infrastructure
{
    /// <summary>
    /// Test compilations: .NET 10 reference assemblies (Basic.Reference.Assemblies, nothing downloaded at test time)
    /// plus the ModelDsl attributes. The reference lists are built once; each test adds only its syntax trees.
    /// </summary>
    internal static class TestCompilation
    {
        public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

        /// <summary>A stand-in for the TorchSharp runtime: its presence is what turns on MDSL0100 and TorchSharp output.</summary>
        public const string TorchSharpRuntimeStub =
            "namespace ModelDsl.TorchSharp { public abstract class TransformerModel { } }";

        public const string IlgpuRuntimeStub =
            "namespace ModelDsl.Ilgpu { public abstract class IlgpuTransformerModel { } }";

        public static readonly ImmutableArray<MetadataReference> References = Basic.Reference.Assemblies.Net100.References.All
            .Cast<MetadataReference>()
            .Append(MetadataReference.CreateFromFile(typeof(global::ModelDsl.DecoderAttribute).Assembly.Location))
            .ToImmutableArray();

        public static readonly CSharpCompilationOptions Options = new(
            OutputKind.DynamicallyLinkedLibrary,
            nullableContextOptions: NullableContextOptions.Enable,
            concurrentBuild: false);

        private static readonly CSharpCompilation Empty = CSharpCompilation.Create("ModelDslTests", references: References, options: Options);

        /// <summary>The same, plus the real TorchSharp and ModelDsl.TorchSharp assemblies, for compiling generated code.</summary>
        private static readonly CSharpCompilation EmptyWithTorchSharp = Empty.AddReferences(
            MetadataReference.CreateFromFile(typeof(global::TorchSharp.torch).Assembly.Location),
            MetadataReference.CreateFromFile(typeof(global::ModelDsl.TorchSharp.CausalLanguageModel).Assembly.Location),
            MetadataReference.CreateFromFile(typeof(global::ModelDsl.Training.TrainingOptions).Assembly.Location));

        /// <summary>A compilation of <paramref name="sources"/>; the first is "/src/Test0.cs", and so on.</summary>
        public static CSharpCompilation Create(params string[] sources) => Empty.AddSyntaxTrees(Parse(sources));

        /// <summary>A compilation of <paramref name="sources"/> that references the real TorchSharp runtime.</summary>
        public static CSharpCompilation CreateWithTorchSharp(params string[] sources) => EmptyWithTorchSharp.AddSyntaxTrees(Parse(sources));

        public static string PathOf(int index) => $"/src/Test{index}.cs";

        private static IEnumerable<SyntaxTree> Parse(string[] sources)
            => sources.Select((source, i) => CSharpSyntaxTree.ParseText(source, ParseOptions, PathOf(i), System.Text.Encoding.UTF8));
    }
}
