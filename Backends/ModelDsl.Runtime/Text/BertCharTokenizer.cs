using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelDsl.Text
{
    /// <summary>
    /// A character tokenizer with BERT's special tokens in front: ids 0..3 are [PAD], [CLS], [SEP] and [MASK], and
    /// character i of <see cref="Characters"/> is id 4 + i. A sequence is [CLS] text [SEP], padded with [PAD]
    /// (<see cref="EncodeSequence"/>). The special ids are this tokenizer's own (Hugging Face's BERT vocabulary puts
    /// [PAD] at 0 and [CLS], [SEP], [MASK] at 101..103). Immutable; saved as JSON beside a checkpoint.
    /// </summary>
    public sealed class BertCharTokenizer
    {
        public const int Pad = 0;
        public const int Cls = 1;
        public const int Sep = 2;
        public const int Mask = 3;

        /// <summary>Special tokens come first; characters start at this id.</summary>
        public const int SpecialCount = 4;

        private const string FormatName = "modeldsl.bert-char-tokenizer";
        private const int FormatVersion = 1;

        /// <summary>The special tokens' names, by id.</summary>
        public static IReadOnlyList<string> SpecialTokens { get; } = new[] { "[PAD]", "[CLS]", "[SEP]", "[MASK]" };

        /// <summary>A tokenizer whose characters are those of <paramref name="characters"/>, after the special tokens.</summary>
        public BertCharTokenizer(CharTokenizer characters) => Characters = characters ?? throw new ArgumentNullException(nameof(characters));

        /// <summary>The special tokens, then the distinct characters of <paramref name="corpus"/> in code-point order.</summary>
        public static BertCharTokenizer FromCorpus(string corpus) => new(CharTokenizer.FromCorpus(corpus));

        /// <summary>The character vocabulary (ids shifted by <see cref="SpecialCount"/> here).</summary>
        public CharTokenizer Characters { get; }

        /// <summary>Special tokens plus characters: the smallest vocabulary a model needs.</summary>
        public int VocabSize => SpecialCount + Characters.VocabSize;

        /// <summary>Whether <paramref name="id"/> is [PAD], [CLS], [SEP] or [MASK].</summary>
        public static bool IsSpecial(int id) => id >= 0 && id < SpecialCount;

        /// <summary>The character ids of <paramref name="text"/>, no special tokens.</summary>
        /// <exception cref="UnknownCharacterException">A character is not in the vocabulary.</exception>
        public int[] Encode(string text)
        {
            var ids = Characters.Encode(text);
            for (int i = 0; i < ids.Length; i++) ids[i] += SpecialCount;
            return ids;
        }

        /// <summary>
        /// [CLS] text [SEP] for a model of context <paramref name="maxLength"/>: the text is cut after
        /// maxLength - 2 characters (BERT's truncation keeps the start). No padding: batches pad to their longest sequence.
        /// </summary>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> leaves no room for a character.</exception>
        public int[] EncodeSequence(string text, int maxLength)
        {
            ArgumentNullException.ThrowIfNull(text);
            if (maxLength < 3)
                throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "A sequence needs room for [CLS], one character and [SEP] (at least 3).");
            var characters = Encode(text);
            int kept = Math.Min(characters.Length, maxLength - 2);
            var ids = new int[kept + 2];
            ids[0] = Cls;
            Array.Copy(characters, 0, ids, 1, kept);
            ids[kept + 1] = Sep;
            return ids;
        }

        /// <summary>The text of <paramref name="ids"/>, special tokens written as their names ("[MASK]").</summary>
        /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary; names it and its position.</exception>
        public string Decode(IEnumerable<int> ids)
        {
            ArgumentNullException.ThrowIfNull(ids);
            var builder = new StringBuilder();
            int position = 0;
            foreach (int id in ids)
            {
                if (id < 0 || id >= VocabSize)
                    throw new ArgumentOutOfRangeException(nameof(ids),
                        string.Format(CultureInfo.InvariantCulture, "Token id {0} at position {1} is outside the vocabulary [0, {2}).", id, position, VocabSize));
                builder.Append(IsSpecial(id) ? SpecialTokens[id] : Characters[id - SpecialCount].ToString());
                position++;
            }
            return builder.ToString();
        }

        /// <summary>The vocabulary as JSON: format, version, the special tokens by id and the characters' code points.</summary>
        public string ToJson()
        {
            var alphabet = new JsonArray();
            foreach (var rune in Characters.Alphabet) alphabet.Add(rune.Value);
            var special = new JsonArray();
            foreach (var name in SpecialTokens) special.Add(name);
            var root = new JsonObject
            {
                ["format"] = FormatName,
                ["version"] = FormatVersion,
                ["vocab_size"] = VocabSize,
                ["special_tokens"] = special,
                ["alphabet"] = alphabet,
            };
            return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        }

        /// <summary>Reads a vocabulary written by <see cref="ToJson"/>.</summary>
        /// <exception cref="InvalidDataException">The JSON is not such a tokenizer, or is inconsistent.</exception>
        public static BertCharTokenizer FromJson(string json)
        {
            var obj = CharTokenizer.ReadFile(json, FormatName, FormatVersion, "a BERT character tokenizer");
            var special = (obj["special_tokens"] as JsonArray)?.Select(n => (string?)n).ToList();
            if (special is null || !special.SequenceEqual(SpecialTokens))
                throw new InvalidDataException($"Tokenizer file: \"special_tokens\" must be [{string.Join(", ", SpecialTokens.Select(s => $"\"{s}\""))}].");
            var alphabet = CharTokenizer.ReadAlphabet(obj);
            BertCharTokenizer tokenizer;
            try { tokenizer = new BertCharTokenizer(new CharTokenizer(alphabet)); }
            catch (ArgumentException e) { throw new InvalidDataException("Tokenizer file: " + e.Message, e); }
            if (obj["vocab_size"] is { } size && size.GetValue<int>() != tokenizer.VocabSize)
                throw new InvalidDataException($"Tokenizer file: vocab_size {size.GetValue<int>()} but {SpecialCount} special tokens and {alphabet.Count} characters make {tokenizer.VocabSize}.");
            return tokenizer;
        }

        /// <summary>Writes the vocabulary to <paramref name="path"/> (UTF-8 JSON, written atomically).</summary>
        public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

        /// <summary>Reads a vocabulary written by <see cref="Save"/>.</summary>
        public static BertCharTokenizer Load(string path)
        {
            ArgumentNullException.ThrowIfNull(path);
            try { return FromJson(File.ReadAllText(path, Encoding.UTF8)); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
        }

        /// <inheritdoc />
        public override string ToString()
            => string.Format(CultureInfo.InvariantCulture, "BertCharTokenizer({0} special tokens, {1} characters)", SpecialCount, Characters.VocabSize);
    }
}
