using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelDsl.Examples.Tasks
{
    /// <summary>
    /// Word ids for a sequence-to-sequence model, with T5's special ids: <see cref="Pad"/> (0) pads batches and starts
    /// the decoder, <see cref="End"/> (1) ends a sequence, and word i of the vocabulary is id i + 2. Words are what
    /// single spaces separate, punctuation included ("said," is one word).
    /// </summary>
    public sealed class WordTokenizer
    {
        /// <summary>Padding, and the decoder's start id (T5's decoder_start_token_id).</summary>
        public const int Pad = 0;

        /// <summary>End of sequence (T5's eos_token_id).</summary>
        public const int End = 1;

        /// <summary>The id of the first word.</summary>
        public const int FirstWord = 2;

        private const string FormatName = "modeldsl.word-tokenizer";
        private readonly string[] words;
        private readonly Dictionary<string, int> ids = new(StringComparer.Ordinal);

        /// <exception cref="ArgumentException">A word is empty, contains a space or is listed twice.</exception>
        public WordTokenizer(IEnumerable<string> vocabulary)
        {
            ArgumentNullException.ThrowIfNull(vocabulary);
            words = vocabulary.ToArray();
            for (int i = 0; i < words.Length; i++)
            {
                if (string.IsNullOrEmpty(words[i]) || words[i].Contains(' '))
                    throw new ArgumentException($"Word {i} ('{words[i]}') is empty or contains a space.", nameof(vocabulary));
                if (!ids.TryAdd(words[i], i + FirstWord))
                    throw new ArgumentException($"The vocabulary lists '{words[i]}' twice.", nameof(vocabulary));
            }
        }

        /// <summary>Ids in use: the two special ids and the words.</summary>
        public int VocabSize => words.Length + FirstWord;

        /// <summary>
        /// The ids of the words of <paramref name="text"/>, followed by <see cref="End"/> when <paramref name="end"/> (as
        /// T5's tokenizer ends every input with "&lt;/s&gt;").
        /// </summary>
        /// <exception cref="ArgumentException">A word is not in the vocabulary (named, with its position).</exception>
        public int[] Encode(string text, bool end = false)
        {
            ArgumentNullException.ThrowIfNull(text);
            var parts = text.Split(' ');
            var result = new int[parts.Length + (end ? 1 : 0)];
            for (int i = 0; i < parts.Length; i++)
                result[i] = ids.TryGetValue(parts[i], out int id) ? id
                    : throw new ArgumentException($"Word {i} of \"{text}\", '{parts[i]}', is not in the vocabulary of {words.Length} words.", nameof(text));
            if (end) result[^1] = End;
            return result;
        }

        /// <summary>The words of <paramref name="tokens"/> separated by spaces; the special ids show as T5's "&lt;pad&gt;" and "&lt;/s&gt;".</summary>
        /// <exception cref="ArgumentOutOfRangeException">An id is outside [0, <see cref="VocabSize"/>).</exception>
        public string Decode(IEnumerable<int> tokens)
        {
            ArgumentNullException.ThrowIfNull(tokens);
            return string.Join(' ', tokens.Select((id, position) => id switch
            {
                Pad => "<pad>",
                End => "</s>",
                _ when id >= FirstWord && id < VocabSize => words[id - FirstWord],
                _ => throw new ArgumentOutOfRangeException(nameof(tokens), $"Token id {id} at position {position} is outside the vocabulary [0, {VocabSize})."),
            }));
        }

        /// <summary>Writes the vocabulary as JSON: <c>{"format": "modeldsl.word-tokenizer", "pad": 0, "end": 1, "words": [...]}</c>.</summary>
        public void Save(string path)
        {
            var root = new JsonObject
            {
                ["format"] = FormatName,
                ["pad"] = Pad,
                ["end"] = End,
                ["words"] = new JsonArray(words.Select(w => (JsonNode?)w).ToArray()),
            };
            AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }

        /// <summary>Reads a vocabulary written by <see cref="Save"/>.</summary>
        /// <exception cref="InvalidDataException">The file is not a word tokenizer.</exception>
        public static WordTokenizer Load(string path)
        {
            var root = JsonNode.Parse(File.ReadAllText(path, Encoding.UTF8)) as JsonObject;
            if (root is null || (string?)root["format"] != FormatName || root["words"] is not JsonArray list)
                throw new InvalidDataException($"{path} is not a word tokenizer file (expected \"format\": \"{FormatName}\" and a \"words\" array).");
            return new WordTokenizer(list.Select(w => (string?)w ?? ""));
        }
    }
}
