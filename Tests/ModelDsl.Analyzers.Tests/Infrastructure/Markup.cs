using System.Collections.Generic;
using System.Text;
using Microsoft.CodeAnalysis.Text;

namespace ModelDsl.Analyzers.Tests.Infrastructure
{
    /// <summary>An expected diagnostic: its id and the span of source it covers.</summary>
    internal readonly record struct ExpectedDiagnostic(string Id, TextSpan Span);

    /// <summary>
    /// Source with expected diagnostics marked inline as <c>{|MDSL0001:12|}</c>: the id, then the exact text the
    /// diagnostic must cover. Several diagnostics on one span: <c>{|MDSL0004,MDSL0004:Decoder(...)|}</c>.
    /// Markers do not nest.
    /// </summary>
    internal static class Markup
    {
        public static (string Source, IReadOnlyList<ExpectedDiagnostic> Expected) Parse(string markup)
        {
            var source = new StringBuilder();
            var expected = new List<ExpectedDiagnostic>();
            int i = 0;
            while (i < markup.Length)
            {
                int open = markup.IndexOf("{|", i, System.StringComparison.Ordinal);
                if (open < 0)
                {
                    source.Append(markup, i, markup.Length - i);
                    break;
                }
                source.Append(markup, i, open - i);
                int colon = markup.IndexOf(':', open);
                int close = markup.IndexOf("|}", open, System.StringComparison.Ordinal);
                if (colon < 0 || close < 0 || colon > close)
                    throw new System.FormatException($"Unterminated marker at {open}: {markup.Substring(open)}");
                var ids = markup.Substring(open + 2, colon - open - 2);
                var text = markup.Substring(colon + 1, close - colon - 1);
                if (text.Contains("{|")) throw new System.FormatException("Markers do not nest.");
                foreach (var id in ids.Split(','))
                    expected.Add(new ExpectedDiagnostic(id, new TextSpan(source.Length, text.Length)));
                source.Append(text);
                i = close + 2;
            }
            return (source.ToString(), expected);
        }
    }
}
