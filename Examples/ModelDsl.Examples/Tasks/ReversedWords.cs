using System;
using System.Collections.Generic;
using System.Linq;

namespace ModelDsl.Examples.Tasks
{
    /// <summary>One example of a sequence-to-sequence task: the input text and the text the model must produce.</summary>
    public sealed record TextPair(string Source, string Target);

    /// <summary>
    /// The T5 example's task, generated from the King James text: a fragment of a verse (consecutive words as the text
    /// has them, punctuation attached) and the same words in reverse order, e.g. "God created the heaven" → "heaven
    /// the created God". Every answer can be checked exactly (<see cref="Reverse"/>).
    /// <para>
    /// Verses are split three ways by their index: every 10th verse (0, 10, ...) for the test split, the verse after
    /// it for validation, the rest for training. Each word position of a verse starts one fragment, of a length drawn
    /// from MinWords..MaxWords (seeded, so the task is the same on every run). Fragments use only the
    /// <see cref="Vocabulary"/>: the most frequent words of the training verses. A validation or test fragment whose
    /// text is also a training fragment (a common phrase of another verse) is dropped, and each held-out text occurs once.
    /// </para>
    /// </summary>
    public sealed class ReversedWords
    {
        private readonly TextPair[] train;
        private readonly TextPair[] validation;
        private readonly TextPair[] test;

        /// <param name="verses">The text, one verse per line.</param>
        /// <param name="vocabularySize">How many of the most frequent training words fragments may use.</param>
        public ReversedWords(string verses, int vocabularySize = 2046, int minWords = 3, int maxWords = 8, int seed = 17)
        {
            ArgumentNullException.ThrowIfNull(verses);
            if (minWords < 2 || maxWords < minWords)
                throw new ArgumentOutOfRangeException(nameof(maxWords), $"Fragments need 2 <= minWords <= maxWords, not {minWords} and {maxWords}.");
            if (vocabularySize < 1) throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize, "The vocabulary needs at least one word.");
            MinWords = minWords;
            MaxWords = maxWords;
            var lines = verses.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
            bool IsTraining(int verse) => verse % 10 >= 2;

            // Most frequent first; equal counts in ordinal order, so the vocabulary is the same everywhere.
            Vocabulary = lines.Where((_, verse) => IsTraining(verse)).SelectMany(words => words)
                .GroupBy(word => word, StringComparer.Ordinal)
                .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
                .Take(vocabularySize).Select(g => g.Key).ToArray();
            var known = new HashSet<string>(Vocabulary, StringComparer.Ordinal);

            var random = new Random(seed);
            var fragments = new List<TextPair>[3] { new(), new(), new() }; // train, validation, test
            for (int verse = 0; verse < lines.Length; verse++)
            {
                var words = lines[verse];
                var split = fragments[IsTraining(verse) ? 0 : verse % 10 == 1 ? 1 : 2];
                for (int start = 0; start < words.Length; start++)
                {
                    int count = Math.Min(random.Next(minWords, maxWords + 1), words.Length - start);
                    if (count < minWords || !words.Skip(start).Take(count).All(known.Contains)) continue;
                    string source = string.Join(' ', words, start, count);
                    split.Add(new TextPair(source, Reverse(source)));
                }
            }
            train = fragments[0].ToArray();
            var seen = new HashSet<string>(train.Select(p => p.Source), StringComparer.Ordinal);
            validation = fragments[1].Where(p => seen.Add(p.Source)).ToArray();
            test = fragments[2].Where(p => seen.Add(p.Source)).ToArray();
        }

        public int MinWords { get; }

        public int MaxWords { get; }

        /// <summary>The words fragments are made of, most frequent first.</summary>
        public IReadOnlyList<string> Vocabulary { get; }

        /// <summary>Training examples, in the order of the text.</summary>
        public IReadOnlyList<TextPair> Train => train;

        /// <summary>Examples for the validation loss: other verses than training's, and no source text that training has.</summary>
        public IReadOnlyList<TextPair> Validation => validation;

        /// <summary>Examples for the exact-match accuracy: other verses again, no source text of the other splits.</summary>
        public IReadOnlyList<TextPair> Test => test;

        /// <summary>The words of <paramref name="text"/> (separated by single spaces) in reverse order: the answer to <paramref name="text"/>.</summary>
        public static string Reverse(string text) => string.Join(' ', text.Split(' ').Reverse());
    }
}
