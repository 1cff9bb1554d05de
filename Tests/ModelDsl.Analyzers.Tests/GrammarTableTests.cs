using System;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using ModelDsl.Generators.Spec;
using Xunit;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>
    /// The generator keeps one table of the DSL's attributes and arguments (it must not load the user-facing
    /// assembly, so it cannot read the attribute classes). These tests hold the attribute classes and docs/dsl.md to it.
    /// </summary>
    public sealed class GrammarTableTests
    {
        private static readonly Assembly Dsl = typeof(DecoderAttribute).Assembly;

        private static Type AttributeType(string attribute)
            => Dsl.GetType("ModelDsl." + attribute + "Attribute") ?? throw new InvalidOperationException($"No ModelDsl.{attribute}Attribute.");

        [Fact]
        public void Every_attribute_class_is_in_the_table_and_every_table_attribute_exists()
        {
            var classes = Dsl.GetExportedTypes()
                .Where(t => t.IsSubclassOf(typeof(Attribute)) && t.Namespace == "ModelDsl")
                .Select(t => t.Name.Substring(0, t.Name.Length - "Attribute".Length))
                .OrderBy(n => n, StringComparer.Ordinal);
            Assert.Equal(DslGrammar.All.OrderBy(n => n, StringComparer.Ordinal), classes);
        }

        [Fact]
        public void Every_public_property_of_an_attribute_is_an_argument_in_the_table()
        {
            foreach (var attribute in DslGrammar.All)
            {
                var properties = AttributeType(attribute).GetProperties(BindingFlags.Public | BindingFlags.Instance)
                    .Where(p => p.DeclaringType != typeof(Attribute)).Select(p => p.Name).OrderBy(n => n, StringComparer.Ordinal);
                var arguments = DslGrammar.Arguments.Where(a => a.Attribute == attribute).Select(a => a.Name).OrderBy(n => n, StringComparer.Ordinal);
                Assert.Equal(arguments, properties);
            }
        }

        [Fact]
        public void Constant_defaults_in_the_table_are_the_attribute_classes_defaults()
        {
            int checkedDefaults = 0;
            foreach (var argument in DslGrammar.Arguments.Where(a => a.Default is not null))
            {
                var type = AttributeType(argument.Attribute);
                var instance = Activator.CreateInstance(type)!;
                var value = type.GetProperty(argument.Name)!.GetValue(instance);
                object actual = value is Enum e ? Convert.ToInt32(e) : value!;
                Assert.True(Equals(argument.Default, actual), $"{argument.Attribute}.{argument.Name}: table {argument.Default}, attribute {actual}");
                checkedDefaults++;
            }
            Assert.True(checkedDefaults >= 15, $"only {checkedDefaults} defaults checked");
        }

        [Fact]
        public void Arguments_without_a_constant_default_default_to_zero_in_the_attribute_class()
        {
            // "Not written" is told apart by the parser (null), never by the value: 0 is always an error (MDSL0005).
            foreach (var argument in DslGrammar.Arguments.Where(a => a.Default is null && a.Kind == ArgumentKind.Int))
            {
                var type = AttributeType(argument.Attribute);
                var instance = Activator.CreateInstance(type)!;
                Assert.Equal(0, type.GetProperty(argument.Name)!.GetValue(instance));
            }
        }

        /// <summary>
        /// What IntelliSense shows (the XML docs beside ModelDsl.dll) agrees with the validator: no integer argument's
        /// summary calls 0 a default or gives it a meaning, since writing 0 is MDSL0005 (Inner, KvHeads, HeadDim and Window
        /// once said "0 (default) means ..."). An optional argument says what leaving it out does ("Not set: ...").
        /// </summary>
        [Fact]
        public void IntelliSense_never_offers_0_for_an_integer_argument()
        {
            var xml = XDocument.Load(Path.ChangeExtension(typeof(DecoderAttribute).Assembly.Location, ".xml"));
            var summaries = xml.Descendants("member").ToDictionary(m => (string)m.Attribute("name")!, m => m.Element("summary")?.Value ?? "");
            var zeroAsAValue = new Regex(@"\b0\b[^.;]*\b(default|means?)\b|\(default\)", RegexOptions.IgnoreCase);
            int checkedArguments = 0;
            foreach (var argument in DslGrammar.Arguments.Where(a => a.Kind == ArgumentKind.Int))
            {
                string member = $"P:{AttributeType(argument.Attribute).FullName}.{argument.Name}";
                Assert.True(summaries.TryGetValue(member, out var summary) && summary.Trim().Length > 0, $"{member} has no summary for IntelliSense");
                Assert.False(zeroAsAValue.IsMatch(summary), $"{member}: \"{summary.Trim()}\" offers 0, which is MDSL0005");
                if (argument.Default is null && !argument.IsRequired)
                    Assert.True(summary.Contains("Not set", StringComparison.Ordinal), $"{member}: \"{summary.Trim()}\" does not say what leaving it out does");
                checkedArguments++;
            }
            Assert.True(checkedArguments >= 15, $"only {checkedArguments} integer arguments checked");
        }

        [Fact]
        public void Docs_list_every_argument_with_its_default()
        {
            var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "docs", "dsl.md"));
            // The grammar's tables: the families and the modifiers.
            var docs = text.Substring(text.IndexOf("## Families", StringComparison.Ordinal));
            // Markdown escapes "|" inside a table cell.
            var rows = docs.Split('\n').Where(l => l.StartsWith("| `[", StringComparison.Ordinal)).Select(l => l.Replace("\\|", "|")).ToList();
            foreach (var attribute in DslGrammar.All)
            {
                var row = rows.FirstOrDefault(r => r.StartsWith("| `[" + attribute + "]`", StringComparison.Ordinal)
                                                   || r.Contains(" `[" + attribute + "]`"));
                Assert.True(row is not null, $"docs/dsl.md has no table row for [{attribute}]");
                foreach (var argument in DslGrammar.Arguments.Where(a => a.Attribute == attribute))
                {
                    string expected = argument.IsRequired ? "`" + argument.Name + "`" : "`" + argument.Name + "` (" + argument.DefaultText + ")";
                    Assert.True(row!.Contains(expected), $"docs/dsl.md's row for [{attribute}] should contain {expected}:\n{row}");
                }
            }
        }

        [Fact]
        public void The_mirrored_enums_have_the_same_names_and_values()
        {
            AssertSameMembers<global::ModelDsl.Activation, Activation>();
            AssertSameMembers<global::ModelDsl.NormKind, NormKind>();
            AssertSameMembers<global::ModelDsl.LoraTargets, LoraTargets>();
        }

        private static void AssertSameMembers<TPublic, TMirror>() where TPublic : struct, Enum where TMirror : struct, Enum
        {
            string Describe<T>() where T : struct, Enum
                => string.Join(", ", Enum.GetValues<T>().Select(v => v + "=" + Convert.ToInt32(v)));
            Assert.Equal(Describe<TPublic>(), Describe<TMirror>());
        }
    }
}
