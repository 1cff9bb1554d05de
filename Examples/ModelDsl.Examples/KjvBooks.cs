using System;
using System.Linq;

namespace ModelDsl.Examples
{
    /// <summary>
    /// The books of the embedded corpus and their verse counts (one verse per line, Data/README.md), to cut the text by
    /// book: the LoRA job trains on the Pentateuch and adapts to Joshua, Judges and Ruth.
    /// </summary>
    internal static class KjvBooks
    {
        public static readonly (string Name, int Verses)[] Books =
        {
            ("Genesis", 1533), ("Exodus", 1213), ("Leviticus", 859), ("Numbers", 1288), ("Deuteronomy", 959),
            ("Joshua", 658), ("Judges", 618), ("Ruth", 85),
        };

        /// <summary>The verses of the books <paramref name="first"/> to <paramref name="last"/>, each line ending in "\n".</summary>
        /// <exception cref="InvalidOperationException">The corpus does not have the verses the table says it has.</exception>
        public static string Text(string corpus, string first, string last)
        {
            var lines = corpus.Split('\n');
            int verses = Books.Sum(b => b.Verses);
            // The corpus ends with "\n", so splitting leaves one empty string after the last verse.
            if (lines.Length != verses + 1 || lines[^1].Length != 0)
                throw new InvalidOperationException($"The KJV corpus has {lines.Length - 1} lines; the book table expects {verses} verses, one per line.");
            int from = Index(first), to = Index(last);
            if (to < from) throw new ArgumentException($"'{last}' comes before '{first}'.", nameof(last));
            int start = Books.Take(from).Sum(b => b.Verses), count = Books.Skip(from).Take(to - from + 1).Sum(b => b.Verses);
            return string.Concat(lines.Skip(start).Take(count).Select(l => l + "\n"));
        }

        private static int Index(string book)
        {
            int index = Array.FindIndex(Books, b => b.Name == book);
            return index >= 0 ? index : throw new ArgumentException($"'{book}' is not a book of the corpus ({string.Join(", ", Books.Select(b => b.Name))}).", nameof(book));
        }
    }
}
