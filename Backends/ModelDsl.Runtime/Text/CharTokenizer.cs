using System;
using System.Buffers;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelDsl.Text
{
    /// <summary>
    /// A character-level tokenizer: one token per Unicode scalar value (a surrogate pair is one character), ids
    /// assigned in ordinal order of the distinct characters of a corpus, so the same corpus always gives the same
    /// vocabulary. Immutable and thread-safe. <see cref="Save"/>/<see cref="Load"/> keep the vocabulary beside a
    /// checkpoint, because a model's ids are only meaningful with the exact tokenizer it was trained with.
    /// </summary>
    public sealed class CharTokenizer
    {
        private const string FormatName = "modeldsl.char-tokenizer";
        private const int FormatVersion = 1;

        private readonly Rune[] runes;
        private readonly int[] ascii = new int[128];
        private readonly Dictionary<int, int> others = new();

        /// <summary>
        /// A tokenizer whose token <c>i</c> is <paramref name="alphabet"/>[i]. Use <see cref="FromCorpus"/> to build
        /// one from text; this constructor is for an explicit, already ordered vocabulary.
        /// </summary>
        /// <exception cref="ArgumentException">The alphabet is empty or lists a character twice.</exception>
        public CharTokenizer(IEnumerable<Rune> alphabet)
        {
            ArgumentNullException.ThrowIfNull(alphabet);
            runes = new List<Rune>(alphabet).ToArray();
            if (runes.Length == 0) throw new ArgumentException("The alphabet of a tokenizer must not be empty.", nameof(alphabet));
            Array.Fill(ascii, -1);
            for (int id = 0; id < runes.Length; id++)
            {
                int value = runes[id].Value;
                int previous = Lookup(value);
                if (previous >= 0)
                    throw new ArgumentException(
                        $"The alphabet lists {Describe(runes[id])} twice (ids {previous} and {id}).", nameof(alphabet));
                if (value < ascii.Length) ascii[value] = id;
                else others.Add(value, id);
            }
        }

        /// <summary>
        /// The tokenizer of <paramref name="corpus"/>: its distinct characters in ordinal (code point) order.
        /// Deterministic: equal corpora, or corpora with the same character set, give identical ids.
        /// </summary>
        /// <exception cref="ArgumentException">The corpus is empty or contains an unpaired surrogate.</exception>
        public static CharTokenizer FromCorpus(string corpus)
        {
            ArgumentNullException.ThrowIfNull(corpus);
            var seen = new SortedSet<int>();
            foreach (var rune in EnumerateRunes(corpus, nameof(corpus))) seen.Add(rune.Value);
            if (seen.Count == 0) throw new ArgumentException("Cannot build a tokenizer from an empty corpus.", nameof(corpus));
            var alphabet = new List<Rune>(seen.Count);
            foreach (int value in seen) alphabet.Add(new Rune(value));
            return new CharTokenizer(alphabet);
        }

        /// <summary>Number of distinct tokens (the model's vocabulary size).</summary>
        public int VocabSize => runes.Length;

        /// <summary>The characters in id order.</summary>
        public IReadOnlyList<Rune> Alphabet => runes;

        /// <summary>The character of token <paramref name="id"/>.</summary>
        public Rune this[int id] => (uint)id < (uint)runes.Length
            ? runes[id]
            : throw new ArgumentOutOfRangeException(nameof(id), $"Token id {id} is outside the vocabulary [0, {runes.Length}).");

        /// <summary>Whether <paramref name="character"/> has a token.</summary>
        public bool Contains(Rune character) => Lookup(character.Value) >= 0;

        /// <summary>The ids of <paramref name="text"/>, one per character.</summary>
        /// <exception cref="UnknownCharacterException">A character is not in the vocabulary; names it and its position.</exception>
        public int[] Encode(string text)
        {
            ArgumentNullException.ThrowIfNull(text);
            var ids = new int[text.Length]; // an upper bound: surrogate pairs make fewer tokens than chars
            int count = 0;
            for (int i = 0; i < text.Length;)
            {
                char c = text[i];
                if (c < 128)
                {
                    int id = ascii[c];
                    if (id < 0) throw new UnknownCharacterException(new Rune(c), i, VocabSize);
                    ids[count++] = id;
                    i++;
                    continue;
                }
                if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out int consumed) != OperationStatus.Done)
                    throw new ArgumentException(
                        $"Invalid UTF-16 at position {i}: unpaired surrogate U+{(int)c:X4}.", nameof(text));
                int other = Lookup(rune.Value);
                if (other < 0) throw new UnknownCharacterException(rune, i, VocabSize);
                ids[count++] = other;
                i += consumed;
            }
            if (count != ids.Length) Array.Resize(ref ids, count);
            return ids;
        }

        /// <summary>The text of <paramref name="ids"/>.</summary>
        /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary; names it and its position.</exception>
        public string Decode(IEnumerable<int> ids)
        {
            ArgumentNullException.ThrowIfNull(ids);
            var builder = new StringBuilder();
            int position = 0;
            Span<char> buffer = stackalloc char[2];
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)runes.Length)
                    throw new ArgumentOutOfRangeException(nameof(ids),
                        $"Token id {id} at position {position} is outside the vocabulary [0, {runes.Length}).");
                int written = runes[id].EncodeToUtf16(buffer);
                builder.Append(buffer[..written]);
                position++;
            }
            return builder.ToString();
        }

        /// <summary>The vocabulary as JSON: <c>{"format": "modeldsl.char-tokenizer", "version": 1, "alphabet": [code points]}</c>.</summary>
        public string ToJson()
        {
            var alphabet = new JsonArray();
            foreach (var rune in runes) alphabet.Add(rune.Value);
            var root = new JsonObject
            {
                ["format"] = FormatName,
                ["version"] = FormatVersion,
                ["vocab_size"] = runes.Length,
                ["alphabet"] = alphabet,
                // Redundant, for people reading the file; ignored on load.
                ["text"] = Decode(Ids()),
            };
            return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        }

        /// <summary>Reads a vocabulary written by <see cref="ToJson"/>.</summary>
        /// <exception cref="InvalidDataException">The JSON is not a tokenizer of a supported version, or is inconsistent.</exception>
        public static CharTokenizer FromJson(string json)
        {
            var obj = ReadFile(json, FormatName, FormatVersion, "a character tokenizer");
            var alphabet = ReadAlphabet(obj);
            if (obj["vocab_size"] is { } size && size.GetValue<int>() != alphabet.Count)
                throw new InvalidDataException($"Tokenizer file: vocab_size {size.GetValue<int>()} but the alphabet has {alphabet.Count} characters.");
            try { return new CharTokenizer(alphabet); }
            catch (ArgumentException e) { throw new InvalidDataException("Tokenizer file: " + e.Message, e); }
        }

        /// <summary>The root object of a tokenizer file of the given format and version, or the reason it is not one.</summary>
        internal static JsonObject ReadFile(string json, string formatName, int formatVersion, string kind)
        {
            ArgumentNullException.ThrowIfNull(json);
            JsonNode? root;
            try { root = JsonNode.Parse(json); }
            catch (JsonException e) { throw new InvalidDataException($"Tokenizer file is not valid JSON: {e.Message}", e); }
            if (root is not JsonObject obj || (string?)obj["format"] != formatName)
                throw new InvalidDataException($"Not {kind} file (expected \"format\": \"{formatName}\").");
            int version = obj["version"]?.GetValue<int>() ?? -1;
            if (version != formatVersion)
                throw new InvalidDataException($"Unsupported tokenizer file version {version} (this library reads version {formatVersion}).");
            return obj;
        }

        /// <summary>The file's "alphabet": code points, each a Unicode scalar value.</summary>
        internal static List<Rune> ReadAlphabet(JsonObject obj)
        {
            if (obj["alphabet"] is not JsonArray array)
                throw new InvalidDataException("Tokenizer file has no \"alphabet\" array.");
            var alphabet = new List<Rune>(array.Count);
            for (int i = 0; i < array.Count; i++)
            {
                int value = array[i]?.GetValue<int>() ?? -1;
                if (!Rune.IsValid(value))
                    throw new InvalidDataException($"Tokenizer file: alphabet[{i}] = {value} is not a Unicode scalar value.");
                alphabet.Add(new Rune(value));
            }
            return alphabet;
        }

        /// <summary>Writes the vocabulary to <paramref name="path"/> (UTF-8 JSON, written atomically).</summary>
        public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

        /// <summary>Reads a vocabulary written by <see cref="Save"/>.</summary>
        public static CharTokenizer Load(string path)
        {
            ArgumentNullException.ThrowIfNull(path);
            try { return FromJson(File.ReadAllText(path, Encoding.UTF8)); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
        }

        /// <inheritdoc />
        public override string ToString() => string.Format(CultureInfo.InvariantCulture, "CharTokenizer({0} characters)", runes.Length);

        private IEnumerable<int> Ids()
        {
            for (int i = 0; i < runes.Length; i++) yield return i;
        }

        private int Lookup(int value) =>
            value < ascii.Length ? ascii[value] : others.TryGetValue(value, out int id) ? id : -1;

        private static IEnumerable<Rune> EnumerateRunes(string text, string paramName)
        {
            for (int i = 0; i < text.Length;)
            {
                if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out int consumed) != OperationStatus.Done)
                    throw new ArgumentException($"Invalid UTF-16 at position {i}: unpaired surrogate U+{(int)text[i]:X4}.", paramName);
                yield return rune;
                i += consumed;
            }
        }

        internal static string Describe(Rune rune)
        {
            string shown = rune.Value switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when Rune.IsControl(rune) => "",
                _ => rune.ToString(),
            };
            return shown.Length == 0
                ? string.Format(CultureInfo.InvariantCulture, "U+{0:X4}", rune.Value)
                : string.Format(CultureInfo.InvariantCulture, "'{0}' (U+{1:X4})", shown, rune.Value);
        }
    }

    /// <summary>A character that the tokenizer has no token for.</summary>
    public sealed class UnknownCharacterException : ArgumentException
    {
        /// <summary>Creates the exception for <paramref name="character"/> at UTF-16 index <paramref name="position"/>.</summary>
        public UnknownCharacterException(Rune character, int position, int vocabSize)
            : base(string.Format(CultureInfo.InvariantCulture,
                "Character {0} at position {1} is not in the tokenizer's vocabulary of {2} characters.",
                CharTokenizer.Describe(character), position, vocabSize), "text")
        {
            Character = character;
            Position = position;
        }

        /// <summary>The unknown character.</summary>
        public Rune Character { get; }

        /// <summary>Its UTF-16 index in the encoded string.</summary>
        public int Position { get; }
    }
}
