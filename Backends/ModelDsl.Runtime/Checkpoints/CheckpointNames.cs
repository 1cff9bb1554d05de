using System;
using System.Collections.Generic;
using System.Linq;

namespace ModelDsl.Checkpoints
{
    /// <summary>
    /// How a checkpoint layout names a model's tensors beyond the model's own parameter names, generated from the
    /// layout: a prefix some files leave out ("transformer." in GPT2Model files), suffixes of tensors that are not
    /// parameters (GPT-2's old attention-mask buffers), and tensors that are copies of a tied parameter (a tied
    /// head's "lm_head.weight", T5's "encoder.embed_tokens.weight"), which must equal it when a file carries them; and
    /// old spellings of name endings that real checkpoints still use (BERT's TensorFlow-era "LayerNorm.gamma").
    /// </summary>
    public sealed class CheckpointNames
    {
        private readonly Dictionary<string, string> tied;

        public CheckpointNames(string layout, string? optionalPrefix, string[] ignoredSuffixes, (string Copy, string Of)[] tiedCopies,
            (string Legacy, string Current)[]? renamedSuffixes = null)
        {
            Layout = layout;
            OptionalPrefix = optionalPrefix;
            IgnoredSuffixes = ignoredSuffixes;
            tied = tiedCopies.ToDictionary(t => t.Copy, t => t.Of, StringComparer.Ordinal);
            RenamedSuffixes = renamedSuffixes ?? Array.Empty<(string, string)>();
        }

        /// <summary>The architecture ("GPT-2", "BERT", ...).</summary>
        public string Layout { get; }

        public string? OptionalPrefix { get; }

        public IReadOnlyList<string> IgnoredSuffixes { get; }

        /// <summary>Checkpoint name of a tied copy → the parameter it must equal.</summary>
        public IReadOnlyDictionary<string, string> TiedCopies => tied;

        /// <summary>Legacy name endings and today's, applied before anything else (so "bert.embeddings.LayerNorm.gamma" is the LayerNorm's weight).</summary>
        public IReadOnlyList<(string Legacy, string Current)> RenamedSuffixes { get; }

        /// <summary>
        /// The parameter a checkpoint tensor loads into, or null to skip it (a buffer, or a tied copy, which the loader
        /// checks separately). <paramref name="isParameter"/> says whether a name is one of the model's.
        /// </summary>
        public string? Map(string name, Func<string, bool> isParameter)
        {
            foreach (var (legacy, current) in RenamedSuffixes)
                if (name.EndsWith(legacy, StringComparison.Ordinal))
                {
                    name = name.Substring(0, name.Length - legacy.Length) + current;
                    break;
                }
            if (IgnoredSuffixes.Any(s => name.EndsWith(s, StringComparison.Ordinal))) return null;
            if (tied.ContainsKey(name)) return null;
            if (isParameter(name)) return name;
            if (OptionalPrefix is not null && !name.StartsWith(OptionalPrefix, StringComparison.Ordinal)
                && (isParameter(OptionalPrefix + name) || tied.ContainsKey(OptionalPrefix + name)))
                return tied.ContainsKey(OptionalPrefix + name) ? null : OptionalPrefix + name;
            return name;
        }
    }
}
