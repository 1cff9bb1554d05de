using System;
using System.Globalization;
using System.Text;

namespace ModelDsl.Generators.Helpers
{
    /// <summary>
    /// Writes C# with explicit indentation (not NormalizeWhitespace, which is slow and reformats). Numbers are
    /// always written culture-invariant, so the output is identical on every machine.
    /// </summary>
    internal sealed class CodeWriter
    {
        private readonly StringBuilder text = new();
        private int depth;

        /// <summary>A writer whose lines start at <paramref name="depth"/> (for text written aside, then appended where it belongs).</summary>
        public CodeWriter(int depth = 0) => this.depth = depth;

        /// <summary>The current indentation depth.</summary>
        public int Depth => depth;

        /// <summary>Appends what another writer wrote, as it is.</summary>
        public CodeWriter Append(CodeWriter other)
        {
            text.Append(other.text);
            return this;
        }

        public CodeWriter Line(string line = "")
        {
            if (line.Length > 0) text.Append(' ', 4 * depth).Append(line);
            text.Append('\n');
            return this;
        }

        /// <summary>Writes a line with a trailing comment, the comments of a block aligned at one column.</summary>
        public CodeWriter Commented(string code, string comment)
        {
            const int column = 96;
            int width = column - 4 * depth;
            return Line((code.Length < width ? code.PadRight(width) : code + " ") + "// " + comment);
        }

        public CodeWriter Lines(string block)
        {
            foreach (var line in block.Replace("\r\n", "\n").Split('\n')) Line(line);
            return this;
        }

        /// <summary>Writes a line and opens a brace block; dispose the result to close it.</summary>
        public Scope Block(string header)
        {
            Line(header).Line("{");
            depth++;
            return new Scope(this);
        }

        public override string ToString() => text.ToString();

        public static string Literal(double value)
        {
            var s = value.ToString("R", CultureInfo.InvariantCulture);
            return s.IndexOfAny(new[] { '.', 'E', 'e' }) >= 0 ? s : s + ".0";
        }

        public static string Literal(long value) => value.ToString(CultureInfo.InvariantCulture);

        public static string Literal(string value) => "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

        public static string Literal(bool value) => value ? "true" : "false";

        public readonly struct Scope : IDisposable
        {
            private readonly CodeWriter writer;

            public Scope(CodeWriter writer) => this.writer = writer;

            public void Dispose()
            {
                writer.depth--;
                writer.Line("}");
            }
        }
    }
}
