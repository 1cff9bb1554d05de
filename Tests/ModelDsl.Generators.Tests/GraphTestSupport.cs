using System;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Families;
using ModelDsl.Generators.Parsing;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Validation;

namespace ModelDsl.Generators.Tests
{
    /// <summary>Declarations to specs and graphs, through the real parser and validator.</summary>
    internal static class GraphTestSupport
    {
        /// <summary>The spec of the type named <paramref name="name"/> in <paramref name="source"/> (usings added), which must be valid.</summary>
        public static ModelSpec Spec(string source, string name = "M")
        {
            var compilation = GeneratorHarness.Compilation(false, "using ModelDsl;\n" + source);
            var type = (INamedTypeSymbol)compilation.GetSymbolsWithName(name, SymbolFilter.Type).Single();
            var spec = ModelParser.Parse(type, CancellationToken.None);
            var errors = ModelValidator.Validate(spec).Where(f => f.IsError).ToList();
            if (errors.Count > 0) throw new InvalidOperationException(string.Join("; ", errors.Select(e => e.Id + " " + e.Message)));
            return spec;
        }

        public static ModelGraph Graph(string source, string name = "M") => TransformerGraph.Build(Spec(source, name));
    }
}
