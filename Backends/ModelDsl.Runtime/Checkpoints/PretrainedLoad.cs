using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace ModelDsl.Checkpoints
{
    /// <summary>
    /// What loading a pretrained checkpoint into a model with a different head did (Hugging Face's from_pretrained
    /// case: an MLM checkpoint into a classifier): the parameters it filled, the parameters the file lacks, which keep
    /// their initialisation (a new head), and the file's tensors the model has no parameter for (the old head).
    /// Names are the model's parameter names for <see cref="Loaded"/> and <see cref="Missing"/>, the file's for
    /// <see cref="Unused"/>. Tensors a layout always skips (buffers, BERT's next-sentence head) are in none of them.
    /// </summary>
    public sealed class PretrainedLoad
    {
        public PretrainedLoad(IReadOnlyList<string> loaded, IReadOnlyList<string> missing, IReadOnlyList<string> unused)
        {
            Loaded = loaded ?? throw new ArgumentNullException(nameof(loaded));
            Missing = missing ?? throw new ArgumentNullException(nameof(missing));
            Unused = unused ?? throw new ArgumentNullException(nameof(unused));
        }

        /// <summary>Parameters (and persistent buffers) set from the file; one name per shared tensor.</summary>
        public IReadOnlyList<string> Loaded { get; }

        /// <summary>Parameters the file does not have: they keep the values they had (their initialisation).</summary>
        public IReadOnlyList<string> Missing { get; }

        /// <summary>Tensors of the file that match no parameter of the model, as the file names them.</summary>
        public IReadOnlyList<string> Unused { get; }

        /// <summary>One line per list, e.g. "loaded 37 tensors; 4 not in the file keep their initialisation: 'classifier.weight', ...".</summary>
        public override string ToString()
        {
            static string Names(IReadOnlyList<string> names) => string.Join(", ", names.Select(n => "'" + n + "'"));
            var parts = new List<string> { string.Format(CultureInfo.InvariantCulture, "loaded {0} tensor(s)", Loaded.Count) };
            if (Missing.Count > 0)
                parts.Add(string.Format(CultureInfo.InvariantCulture, "{0} not in the file keep their initialisation: {1}", Missing.Count, Names(Missing)));
            if (Unused.Count > 0)
                parts.Add(string.Format(CultureInfo.InvariantCulture, "{0} of the file unused: {1}", Unused.Count, Names(Unused)));
            return string.Join("; ", parts);
        }
    }
}
