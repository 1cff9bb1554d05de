using System;
using System.Collections.Generic;
using System.Linq;

namespace ModelDsl.Examples
{
    /// <summary>
    /// The books of the embedded KJV excerpt: the book of every verse (the bert job's labels) and the text of a range
    /// of books (the lora job trains on the Pentateuch and adapts to Joshua, Judges and Ruth). The file has one verse
    /// per line and no book names, but the eight books' verse counts are fixed, so the lines label themselves: the first
    /// 1533 are Genesis, and so on.
    /// A held-out split takes whole passages, not scattered verses: neighbouring verses repeat each other (Numbers 7
    /// lists the same offering twelve times), and a verse whose neighbour is in training would be half seen.
    /// </summary>
    internal static class KjvBooks
    {
        /// <summary>Genesis to Ruth and their verse counts in the King James Version.</summary>
        public static IReadOnlyList<(string Name, int Verses)> Books { get; } = new[]
        {
            ("Genesis", 1533), ("Exodus", 1213), ("Leviticus", 859), ("Numbers", 1288),
            ("Deuteronomy", 959), ("Joshua", 658), ("Judges", 618), ("Ruth", 85),
        };

        /// <summary>Verses of a passage; every <see cref="HeldOutEvery"/>-th passage of a book is held out.</summary>
        public const int PassageVerses = 20;

        /// <summary>One passage in this many is held out (20% of every book, Ruth included).</summary>
        public const int HeldOutEvery = 5;

        /// <summary>The verses of <paramref name="corpus"/> (one per line) with their book's index in <see cref="Books"/>.</summary>
        /// <exception cref="InvalidOperationException">The line count is not the books' verse total: not the shipped excerpt.</exception>
        public static (string Verse, int Book)[] Label(string corpus)
        {
            ArgumentNullException.ThrowIfNull(corpus);
            var lines = corpus.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            int total = Books.Sum(b => b.Verses);
            if (lines.Length != total)
                throw new InvalidOperationException(
                    $"The corpus has {lines.Length} verses, but Genesis to Ruth have {total} ({string.Join(" + ", Books.Select(b => b.Verses))}); the book labels would be wrong.");
            var labelled = new (string, int)[lines.Length];
            int line = 0;
            for (int book = 0; book < Books.Count; book++)
                for (int v = 0; v < Books[book].Verses; v++, line++)
                    labelled[line] = (lines[line], book);
            return labelled;
        }

        /// <summary>Whether the <paramref name="verseInBook"/>-th verse (0-based) of a book is in the held-out split: passage 2 of every 5.</summary>
        public static bool IsHeldOut(int verseInBook) => verseInBook / PassageVerses % HeldOutEvery == 2;

        /// <summary>The labelled verses split into training and held-out passages, each in corpus order.</summary>
        public static ((string Verse, int Book)[] Train, (string Verse, int Book)[] HeldOut) Split((string Verse, int Book)[] labelled)
        {
            var train = new List<(string, int)>();
            var heldOut = new List<(string, int)>();
            int verseInBook = 0;
            for (int i = 0; i < labelled.Length; i++)
            {
                if (i > 0 && labelled[i].Book != labelled[i - 1].Book) verseInBook = 0;
                (IsHeldOut(verseInBook++) ? heldOut : train).Add(labelled[i]);
            }
            return (train.ToArray(), heldOut.ToArray());
        }

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
            int index = Books.Select(b => b.Name).ToList().IndexOf(book);
            return index >= 0 ? index : throw new ArgumentException($"'{book}' is not a book of the corpus ({string.Join(", ", Books.Select(b => b.Name))}).", nameof(book));
        }
    }
}
