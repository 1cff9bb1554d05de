using System;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// How a sequence-to-sequence model decodes: greedy (BeamSize 1) or beam search, as Hugging Face's generate does
    /// with num_beams, length_penalty and its default early_stopping=False. The defaults are T5's ids: the decoder
    /// starts from the pad id 0 and id 1 ends a sequence. The constructor (and <c>with</c>) validates every value;
    /// ids are checked against the model's vocabulary when decoding.
    /// </summary>
    /// <param name="MaxTokens">Most tokens generated per sequence, the end token included (Hugging Face's max_new_tokens);
    /// at least 1, and at most the model's context (checked when decoding).</param>
    /// <param name="BeamSize">1: greedy; more: that many beams (num_beams).</param>
    /// <param name="LengthPenalty">Beam search ranks a finished sequence by its summed log-probability divided by
    /// length^LengthPenalty, the length counting the generated tokens and the end token (length_penalty; 0 ranks by
    /// probability alone, larger values favour longer sequences). Finite.</param>
    /// <param name="DecoderStartId">The decoder's first input (decoder_start_token_id; T5: the pad id 0).</param>
    /// <param name="EndId">The end-of-sequence id (eos_token_id; T5: 1).</param>
    public sealed record DecodingOptions(int MaxTokens, int BeamSize = 1, double LengthPenalty = 1.0, int DecoderStartId = 0, int EndId = 1)
    {
        public int MaxTokens { get; init => field = Check(value, 1, nameof(MaxTokens), "the number of tokens to generate"); } = Check(MaxTokens, 1, nameof(MaxTokens), "the number of tokens to generate");

        public int BeamSize { get; init => field = Check(value, 1, nameof(BeamSize), "the number of beams (1 = greedy)"); } = Check(BeamSize, 1, nameof(BeamSize), "the number of beams (1 = greedy)");

        public double LengthPenalty { get; init => field = CheckPenalty(value); } = CheckPenalty(LengthPenalty);

        public int DecoderStartId { get; init => field = Check(value, 0, nameof(DecoderStartId), "a token id"); } = Check(DecoderStartId, 0, nameof(DecoderStartId), "a token id");

        public int EndId { get; init => field = Check(value, 0, nameof(EndId), "a token id"); } = Check(EndId, 0, nameof(EndId), "a token id");

        private static int Check(int value, int least, string name, string what)
            => value >= least ? value
                : throw new ArgumentOutOfRangeException(name, value, $"{name} is {what} and must be >= {least}, not {value}.");

        private static double CheckPenalty(double value)
            => double.IsFinite(value) ? value
                : throw new ArgumentOutOfRangeException(nameof(LengthPenalty), value, $"LengthPenalty must be a finite number, not {value}.");
    }

    /// <summary>
    /// One decoded sequence. <paramref name="Tokens"/> are the generated ids without the decoder start id and without
    /// the end id. <paramref name="LogProbability"/> is the sum of the log-probabilities of the generated tokens, the end
    /// token included when <paramref name="Ended"/>; <paramref name="Score"/> is what beam search ranks by:
    /// LogProbability / (Tokens.Length + (Ended ? 1 : 0))^LengthPenalty (Hugging Face's sequences_scores).
    /// <paramref name="Ended"/> is false when decoding stopped at MaxTokens before the end token.
    /// </summary>
    public sealed record DecodedSequence(int[] Tokens, double LogProbability, double Score, bool Ended);
}
