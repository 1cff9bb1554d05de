using System;

namespace ModelDsl.Text
{
    /// <summary>Information-theoretic baselines for language-model losses (natural log: nats, the unit of cross-entropy).</summary>
    public static class Entropy
    {
        /// <summary>
        /// Entropy of the unigram (token frequency) distribution of <paramref name="tokens"/>, in nats per token:
        /// H = -sum p log p with p the empirical frequencies. It is the cross-entropy of the best model that ignores
        /// context, so a language model whose loss is not clearly below it has learned nothing beyond frequencies.
        /// </summary>
        /// <exception cref="ArgumentException">The sequence is empty or contains a negative id.</exception>
        public static double UnigramNats(ReadOnlySpan<int> tokens)
        {
            if (tokens.IsEmpty) throw new ArgumentException("The entropy of an empty token sequence is undefined.", nameof(tokens));
            int max = 0;
            for (int i = 0; i < tokens.Length; i++)
            {
                if (tokens[i] < 0)
                    throw new ArgumentException($"Token id {tokens[i]} at position {i} is negative.", nameof(tokens));
                if (tokens[i] > max) max = tokens[i];
            }
            var counts = new long[max + 1];
            foreach (int t in tokens) counts[t]++;
            // H = log N - (1/N) sum c log c: exact for uniform counts (no p log p rounding per term).
            double n = tokens.Length, sum = 0;
            foreach (long c in counts)
                if (c > 0) sum += c * Math.Log(c);
            return Math.Max(0.0, Math.Log(n) - sum / n);
        }

        /// <summary>Converts nats to bits (divides by ln 2).</summary>
        public static double NatsToBits(double nats) => nats / Math.Log(2.0);

        /// <summary>Perplexity exp(loss) of a loss in nats per token.</summary>
        public static double Perplexity(double nats) => Math.Exp(nats);
    }
}
