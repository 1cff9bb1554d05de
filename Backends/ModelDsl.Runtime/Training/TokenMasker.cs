using System;
using System.Collections.Generic;
using System.Linq;

namespace ModelDsl.Training
{
    /// <summary>
    /// BERT's masked-language-model recipe (Devlin et al. 2019, section 3.1): each maskable token is chosen with
    /// probability <see cref="ChooseRate"/>; a chosen token becomes [MASK] with probability <see cref="MaskShare"/>, a
    /// random token with probability <see cref="RandomShare"/>, and stays itself otherwise. The defaults are the paper's
    /// 15%, 80% and 10% (so 10% kept).
    /// </summary>
    public sealed record MaskingRecipe
    {
        /// <summary>Probability that a maskable token is chosen as a prediction target.</summary>
        public double ChooseRate { get; init; } = 0.15;

        /// <summary>Share of the chosen tokens replaced by [MASK].</summary>
        public double MaskShare { get; init; } = 0.8;

        /// <summary>Share of the chosen tokens replaced by a random (non-special) token; it may draw the original.</summary>
        public double RandomShare { get; init; } = 0.1;

        /// <summary>Share of the chosen tokens left as they are: 1 - MaskShare - RandomShare.</summary>
        public double KeepShare => 1 - MaskShare - RandomShare;

        /// <summary>Checks every value; throws naming the first invalid one.</summary>
        /// <exception cref="ArgumentOutOfRangeException">A rate is outside its range, or the shares exceed 1.</exception>
        public void Validate()
        {
            if (!(ChooseRate > 0 && ChooseRate <= 1))
                throw new ArgumentOutOfRangeException(nameof(ChooseRate), ChooseRate, "MaskingRecipe.ChooseRate must be in (0, 1].");
            if (!(MaskShare >= 0 && MaskShare <= 1))
                throw new ArgumentOutOfRangeException(nameof(MaskShare), MaskShare, "MaskingRecipe.MaskShare must be in [0, 1].");
            if (!(RandomShare >= 0 && RandomShare <= 1 - MaskShare + 1e-12))
                throw new ArgumentOutOfRangeException(nameof(RandomShare), RandomShare, $"MaskingRecipe.RandomShare must be in [0, 1 - MaskShare = {1 - MaskShare}].");
        }
    }

    /// <summary>
    /// Applies a <see cref="MaskingRecipe"/> to token sequences, deterministically: the same seed and the same
    /// sequence of calls give the same masks on every platform (<see cref="SplitMix64"/>, not <see cref="Random"/>). Special tokens
    /// (padding, [CLS], [SEP], [MASK]) are never chosen and never drawn as random replacements. As in BERT's own data
    /// pipeline, a sequence with a maskable token always gets at least one target: if the draws chose none, one
    /// maskable token is chosen uniformly (this raises the rate noticeably only for sequences of a few tokens).
    /// Backend-neutral: it fills <c>long</c> spans that backends turn into tensors.
    /// </summary>
    public sealed class TokenMasker
    {
        /// <summary>The target of a position that is not predicted (PyTorch's ignore_index).</summary>
        public const long Ignored = -100;

        private readonly bool[] special;
        private readonly int[] replacements;
        private readonly SplitMix64 random;

        /// <summary>A masker for ids in [0, <paramref name="vocabSize"/>), with <paramref name="specialIds"/> never masked.</summary>
        /// <exception cref="ArgumentException">The mask id is not special, or every id is special.</exception>
        public TokenMasker(MaskingRecipe recipe, int maskId, int vocabSize, IEnumerable<int> specialIds, ulong seed)
        {
            ArgumentNullException.ThrowIfNull(recipe);
            ArgumentNullException.ThrowIfNull(specialIds);
            recipe.Validate();
            if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "The vocabulary size must be positive.");
            special = new bool[vocabSize];
            foreach (int id in specialIds)
            {
                if ((uint)id >= (uint)vocabSize)
                    throw new ArgumentOutOfRangeException(nameof(specialIds), id, $"Special token id {id} is outside the vocabulary [0, {vocabSize}).");
                special[id] = true;
            }
            if ((uint)maskId >= (uint)vocabSize || !special[maskId])
                throw new ArgumentException($"The mask id {maskId} must be one of the special token ids.", nameof(maskId));
            replacements = Enumerable.Range(0, vocabSize).Where(id => !special[id]).ToArray();
            if (replacements.Length == 0) throw new ArgumentException("Every id is special: there is nothing to mask.", nameof(specialIds));
            Recipe = recipe;
            MaskId = maskId;
            VocabSize = vocabSize;
            random = new SplitMix64(seed);
        }

        public MaskingRecipe Recipe { get; }

        public int MaskId { get; }

        public int VocabSize { get; }

        /// <summary>Whether <paramref name="id"/> may be chosen (it is in the vocabulary and not special).</summary>
        public bool IsMaskable(long id) => id >= 0 && id < VocabSize && !special[id];

        /// <summary>
        /// Masks one sequence: <paramref name="input"/> gets <paramref name="ids"/> with the chosen tokens replaced,
        /// <paramref name="targets"/> the original id at chosen positions and <see cref="Ignored"/> elsewhere. All three
        /// spans have the sequence's length. Returns the number of chosen positions.
        /// </summary>
        /// <exception cref="ArgumentException">The spans differ in length, or an id is outside the vocabulary.</exception>
        public int Apply(ReadOnlySpan<long> ids, Span<long> input, Span<long> targets)
        {
            if (input.Length != ids.Length || targets.Length != ids.Length)
                throw new ArgumentException($"The input ({input.Length}) and target ({targets.Length}) spans must have the sequence's length ({ids.Length}).");
            int chosen = 0, maskable = 0;
            for (int t = 0; t < ids.Length; t++)
            {
                long id = ids[t];
                if ((ulong)id >= (ulong)VocabSize)
                    throw new ArgumentException($"Token id {id} at position {t} is outside the vocabulary [0, {VocabSize}).", nameof(ids));
                input[t] = id;
                targets[t] = Ignored;
                if (special[id]) continue;
                maskable++;
                if (random.NextDouble() < Recipe.ChooseRate)
                {
                    Replace(ids, input, targets, t);
                    chosen++;
                }
            }
            if (chosen == 0 && maskable > 0)
            {
                int pick = (int)random.NextBelow((ulong)maskable);
                for (int t = 0; t < ids.Length; t++)
                    if (!special[ids[t]] && pick-- == 0)
                    {
                        Replace(ids, input, targets, t);
                        chosen = 1;
                        break;
                    }
            }
            return chosen;
        }

        private void Replace(ReadOnlySpan<long> ids, Span<long> input, Span<long> targets, int t)
        {
            targets[t] = ids[t];
            double u = random.NextDouble();
            if (u < Recipe.MaskShare) input[t] = MaskId;
            else if (u < Recipe.MaskShare + Recipe.RandomShare) input[t] = replacements[random.NextBelow((ulong)replacements.Length)];
        }
    }
}
