using System;
using System.IO;
using System.Linq;
using System.Text;
using ModelDsl.Text;
using Xunit;

namespace ModelDsl.TorchSharp.Tests
{
    public class TextTests
    {
        [Fact]
        public void Tokenizer_ids_are_the_sorted_distinct_characters()
        {
            var tokenizer = CharTokenizer.FromCorpus("hello, world\n");
            Assert.Equal("\n ,dehlorw", string.Concat(tokenizer.Alphabet.Select(r => r.ToString())));
            Assert.Equal(10, tokenizer.VocabSize);
            Assert.Equal(new[] { 5, 4, 6, 6, 7 }, tokenizer.Encode("hello"));
            // Same character set in another order: same ids.
            Assert.Equal(tokenizer.Alphabet, CharTokenizer.FromCorpus("\nwrold ,hel").Alphabet);
        }

        [Theory]
        [InlineData("In the beginning God created the heaven and the earth.\n")]
        [InlineData("naïve café, 𝄞 clef and 😀\r\n\t")]
        public void Tokenizer_round_trips(string text)
        {
            var tokenizer = CharTokenizer.FromCorpus(text);
            int[] ids = tokenizer.Encode(text);
            Assert.Equal(text.EnumerateRunes().Count(), ids.Length); // a surrogate pair is one token
            Assert.Equal(text, tokenizer.Decode(ids));
        }

        [Fact]
        public void Unknown_character_is_named_with_its_position()
        {
            var tokenizer = CharTokenizer.FromCorpus("abc ");
            var e = Assert.Throws<UnknownCharacterException>(() => tokenizer.Encode("abc cab!"));
            Assert.Equal(7, e.Position);
            Assert.Equal(new Rune('!'), e.Character);
            Assert.Contains("'!' (U+0021) at position 7", e.Message);

            var control = Assert.Throws<UnknownCharacterException>(() => tokenizer.Encode("a\nb"));
            Assert.Contains("'\\n' (U+000A) at position 1", control.Message);
        }

        [Fact]
        public void Decode_rejects_ids_outside_the_vocabulary()
        {
            var tokenizer = CharTokenizer.FromCorpus("ab");
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode(new[] { 0, 1, 2 }));
            Assert.Contains("Token id 2 at position 2", e.Message);
        }

        [Fact]
        public void Tokenizer_saves_and_loads()
        {
            var tokenizer = CharTokenizer.FromCorpus("The LORD, \"quoted\" \\ and 😀\n");
            string path = Path.Combine(Path.GetTempPath(), $"tokenizer-{Guid.NewGuid():N}.json");
            try
            {
                tokenizer.Save(path);
                var loaded = CharTokenizer.Load(path);
                Assert.Equal(tokenizer.Alphabet, loaded.Alphabet);
                Assert.Equal(tokenizer.Encode("LORD 😀\n"), loaded.Encode("LORD 😀\n"));
            }
            finally
            {
                File.Delete(path);
            }
        }

        [Theory]
        [InlineData("{\"format\": \"something-else\", \"version\": 1, \"alphabet\": [97]}", "Not a character tokenizer")]
        [InlineData("{\"format\": \"modeldsl.char-tokenizer\", \"version\": 2, \"alphabet\": [97]}", "version 2")]
        [InlineData("{\"format\": \"modeldsl.char-tokenizer\", \"version\": 1, \"alphabet\": [97, 97]}", "twice")]
        [InlineData("{\"format\": \"modeldsl.char-tokenizer\", \"version\": 1, \"alphabet\": [55296]}", "not a Unicode scalar")]
        [InlineData("{\"format\": \"modeldsl.char-tokenizer\", \"version\": 1, \"vocab_size\": 3, \"alphabet\": [97]}", "vocab_size 3")]
        [InlineData("not json", "not valid JSON")]
        public void Tokenizer_file_errors_are_explained(string json, string expected)
        {
            var e = Assert.Throws<InvalidDataException>(() => CharTokenizer.FromJson(json));
            Assert.Contains(expected, e.Message);
        }

        [Theory]
        [InlineData(new[] { 0, 0, 1, 1 }, 0.69314718055994531)] // ln 2
        [InlineData(new[] { 3, 1, 2, 0 }, 1.3862943611198906)]  // ln 4
        [InlineData(new[] { 7, 7, 7 }, 0.0)]
        [InlineData(new[] { 0, 0, 0, 1 }, 0.56233514461880829)] // -(3/4 ln 3/4 + 1/4 ln 1/4)
        public void Unigram_entropy_is_in_nats(int[] tokens, double expected)
        {
            Assert.Equal(expected, Entropy.UnigramNats(tokens), 12);
        }

        [Fact]
        public void Unigram_entropy_of_text()
        {
            var tokenizer = CharTokenizer.FromCorpus("aabb");
            Assert.Equal(Math.Log(2), Entropy.UnigramNats(tokenizer.Encode("aabb")), 12);
            Assert.Equal(1.0, Entropy.NatsToBits(Math.Log(2)), 12);
            Assert.Throws<ArgumentException>(() => Entropy.UnigramNats(Array.Empty<int>()));
            Assert.Throws<ArgumentException>(() => Entropy.UnigramNats(new[] { 0, -1 }));
        }
    }
}
