using System;

namespace ModelDsl.Training
{
    /// <summary>
    /// SplitMix64 (Steele, Lea, Flood 2014): a tiny, full-period generator whose stream is the same on every platform
    /// and .NET version (unlike <see cref="Random"/>), for seeded batches and masks that must be reproducible.
    /// </summary>
    public sealed class SplitMix64
    {
        private ulong state;

        public SplitMix64(ulong seed) => state = seed;

        /// <summary>The generator's state: saving and restoring it resumes the stream exactly where it was.</summary>
        public ulong State
        {
            get => state;
            set => state = value;
        }

        /// <summary>The next 64 random bits.</summary>
        public ulong NextUInt64()
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform in [0, 1), from 53 random bits.</summary>
        public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

        /// <summary>Uniform in [0, <paramref name="n"/>) without modulo bias (Lemire's multiply-shift with rejection).</summary>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is 0.</exception>
        public ulong NextBelow(ulong n)
        {
            if (n == 0) throw new ArgumentOutOfRangeException(nameof(n), n, "The bound must be positive.");
            // Lemire: the high word of r * n is uniform in [0, n) once the low words below 2^64 mod n are rejected.
            ulong threshold = (0UL - n) % n;
            while (true)
            {
                ulong high = Math.BigMul(NextUInt64(), n, out ulong low);
                if (low >= threshold) return high;
            }
        }

        /// <summary><see cref="NextBelow"/> for an int bound, as samplers index arrays.</summary>
        public int NextIndex(int n) => (int)NextBelow((ulong)n);
    }
}
