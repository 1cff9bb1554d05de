using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    // Decoding with a KV cache: the encoder runs once, then the decoder one token per step (DecodeNext), its
    // self-attention keys and values appended to the cache and the encoder's keys and values kept in it.
    public abstract partial class SequenceToSequenceModel
    {
        /// <summary>
        /// Decodes every source row: greedy when <see cref="DecodingOptions.BeamSize"/> is 1, beam search otherwise.
        /// <paramref name="source"/> is [B, S] int64, <paramref name="sourceMask"/> [B, S] true for real tokens (null: all
        /// real). Runs in evaluation mode without gradients and restores the caller's mode.
        /// </summary>
        /// <exception cref="ArgumentException">Bad ids, mask or options for this model (the message names the model and the value).</exception>
        /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was signalled (checked before every step).</exception>
        public IReadOnlyList<DecodedSequence> Generate(Tensor source, Tensor? sourceMask, DecodingOptions options, CancellationToken cancellation = default)
        {
            ArgumentNullException.ThrowIfNull(options);
            return options.BeamSize == 1 ? Greedy(source, sourceMask, options, cancellation) : BeamSearch(source, sourceMask, options, cancellation);
        }

        /// <summary>Decodes one source sequence of ids (see the batched overload).</summary>
        public DecodedSequence Generate(IReadOnlyList<int> source, DecodingOptions options, CancellationToken cancellation = default)
        {
            ArgumentNullException.ThrowIfNull(source);
            using var scope = torch.NewDisposeScope();
            var ids = torch.tensor(source.Select(t => (long)t).ToArray(), device: Device).unsqueeze(0);
            return Generate(ids, null, options, cancellation)[0];
        }

        /// <summary>
        /// Greedy decoding (Hugging Face's greedy search): each step appends the most probable token; a row stops at
        /// <see cref="DecodingOptions.EndId"/> or after <see cref="DecodingOptions.MaxTokens"/>. BeamSize is not read.
        /// </summary>
        public IReadOnlyList<DecodedSequence> Greedy(Tensor source, Tensor? sourceMask, DecodingOptions options, CancellationToken cancellation = default)
            => Decoding(source, sourceMask, options, beams: 1, (encoded, mask, cache) => GreedySteps(encoded, mask, cache, options, cancellation));

        /// <summary>
        /// Beam search as Hugging Face's generate does it with num_beams = BeamSize, length_penalty = LengthPenalty and
        /// early_stopping = False. Each source row keeps BeamSize running beams (the first step expands only one).
        /// Every step ranks the 2 x BeamSize best continuations of its beams by summed log-probability; a continuation
        /// that ends (EndId) joins the row's finished hypotheses when it ranks among the first BeamSize, scored
        /// sum / length^LengthPenalty (length: generated tokens with the end token); the best BeamSize continuations
        /// that do not end become the next beams (the cache's rows are reordered to follow them). A row is done when it
        /// has BeamSize finished hypotheses and none scores below its best running beam's sum / (tokens so far)^LengthPenalty
        /// (Hugging Face's heuristic). At MaxTokens the best BeamSize continuations finish as they are (Ended false
        /// unless they end). The result is each row's best finished hypothesis. Any BeamSize, 1 included: that gives
        /// greedy's tokens by another path.
        /// </summary>
        public IReadOnlyList<DecodedSequence> BeamSearch(Tensor source, Tensor? sourceMask, DecodingOptions options, CancellationToken cancellation = default)
            => Decoding(source, sourceMask, options, options.BeamSize, (encoded, mask, cache) => BeamSteps(encoded, mask, cache, options, cancellation));

        /// <summary>Checks, eval mode and no_grad, the encoder once, its states repeated per beam, a cache for every row.</summary>
        private IReadOnlyList<DecodedSequence> Decoding(Tensor source, Tensor? sourceMask, DecodingOptions options, int beams,
            Func<Tensor, Tensor, KvCache, IReadOnlyList<DecodedSequence>> steps)
        {
            ArgumentNullException.ThrowIfNull(options);
            if (options.MaxTokens > Card.Context)
                throw new ArgumentOutOfRangeException(nameof(options), options.MaxTokens,
                    $"Model '{Card.Name}': MaxTokens {options.MaxTokens} exceeds the context of {Card.Context} decoder positions.");
            foreach (var (name, id) in new[] { (nameof(options.DecoderStartId), options.DecoderStartId), (nameof(options.EndId), options.EndId) })
                if (id >= Card.Vocab)
                    throw new ArgumentOutOfRangeException(nameof(options), id, $"Model '{Card.Name}': {name} {id} is outside the vocabulary [0, {Card.Vocab}).");

            bool wasTraining = training;
            eval();
            try
            {
                using var scope = torch.NewDisposeScope();
                using var noGrad = torch.no_grad();
                var encoded = EncodeSource(source, sourceMask);
                var mask = sourceMask ?? torch.ones(source.shape, ScalarType.Bool, source.device);
                if (beams > 1)
                {
                    encoded = encoded.repeat_interleave(beams, 0);
                    mask = mask.repeat_interleave(beams, 0);
                }
                using var cache = CreateCache(encoded.shape[0]);
                return steps(encoded, mask, cache);
            }
            finally
            {
                train(wasTraining);
            }
        }

        /// <summary>Log-probabilities [rows, Vocab] (float64) of the token after <paramref name="next"/> [rows, 1].</summary>
        private Tensor NextLogProbabilities(Tensor next, Tensor encoded, Tensor mask, KvCache cache)
            => DecodeNext(next, encoded, mask, cache).select(1, 0).to(ScalarType.Float64).log_softmax(-1);

        private IReadOnlyList<DecodedSequence> GreedySteps(Tensor encoded, Tensor mask, KvCache cache, DecodingOptions options, CancellationToken cancellation)
        {
            int rows = (int)encoded.shape[0];
            var tokens = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToArray();
            var logProbability = new double[rows];
            var ended = new bool[rows];
            var next = Enumerable.Repeat((long)options.DecoderStartId, rows).ToArray();
            for (int step = 0; step < options.MaxTokens && !ended.All(e => e); step++)
            {
                cancellation.ThrowIfCancellationRequested();
                using var scope = torch.NewDisposeScope();
                var (best, ids) = NextLogProbabilities(torch.tensor(next, rows, 1, device: encoded.device), encoded, mask, cache).max(-1);
                var bestIds = ids.cpu().data<long>().ToArray();
                var bestLogProbabilities = best.cpu().data<double>().ToArray();
                for (int r = 0; r < rows; r++)
                {
                    if (ended[r]) continue; // a finished row is fed its end token and ignored
                    logProbability[r] += bestLogProbabilities[r];
                    if (bestIds[r] == options.EndId) ended[r] = true;
                    else tokens[r].Add((int)bestIds[r]);
                    next[r] = bestIds[r];
                }
            }
            return Enumerable.Range(0, rows)
                .Select(r => Finished(tokens[r].ToArray(), logProbability[r], ended[r], options.LengthPenalty)).ToArray();
        }

        private IReadOnlyList<DecodedSequence> BeamSteps(Tensor encoded, Tensor mask, KvCache cache, DecodingOptions options, CancellationToken cancellation)
        {
            int beams = options.BeamSize, rows = (int)encoded.shape[0], batch = rows / beams, candidates = 2 * beams;
            long vocab = Card.Vocab;
            var sequences = Enumerable.Range(0, rows).Select(_ => Array.Empty<int>()).ToArray();
            // Only the first beam of each row is live at the start (Hugging Face gives the others -1e9).
            var scores = Enumerable.Range(0, rows).Select(r => r % beams == 0 ? 0.0 : -1e9).ToArray();
            var next = Enumerable.Repeat((long)options.DecoderStartId, rows).ToArray();
            var finished = Enumerable.Range(0, batch).Select(_ => new List<DecodedSequence>()).ToArray();
            var done = new bool[batch];

            for (int step = 0; step < options.MaxTokens; step++)
            {
                cancellation.ThrowIfCancellationRequested();
                using var scope = torch.NewDisposeScope();
                var logProbabilities = NextLogProbabilities(torch.tensor(next, rows, 1, device: encoded.device), encoded, mask, cache);
                var total = (logProbabilities + torch.tensor(scores, rows, 1, device: encoded.device)).view(batch, beams * vocab);
                var (topScores, topIndices) = total.topk(Math.Min(candidates, (int)(beams * vocab)), -1);
                int kept = (int)topScores.shape[1];
                var candidateScores = topScores.cpu().data<double>().ToArray();
                var candidateIndices = topIndices.cpu().data<long>().ToArray();

                int length = step + 1; // generated tokens, this step's included
                bool last = step == options.MaxTokens - 1;
                var source = new long[rows];
                var nextScores = new double[rows];
                var nextSequences = new int[rows][];
                for (int b = 0; b < batch; b++)
                {
                    if (done[b])
                    {
                        for (int j = 0; j < beams; j++)
                        {
                            int row = b * beams + j;
                            (source[row], nextScores[row], nextSequences[row], next[row]) = (row, scores[row], sequences[row], options.EndId);
                        }
                        continue;
                    }
                    int filled = 0;
                    for (int rank = 0; rank < kept && filled < beams; rank++)
                    {
                        long index = candidateIndices[b * kept + rank];
                        int from = b * beams + (int)(index / vocab), token = (int)(index % vocab);
                        double score = candidateScores[b * kept + rank];
                        bool ends = token == options.EndId;
                        if ((ends || last) && rank < beams)
                            Keep(finished[b], Finished(ends ? sequences[from] : Append(sequences[from], token), score, ends, options.LengthPenalty), beams);
                        if (ends || last) continue;
                        int row = b * beams + filled++;
                        (source[row], nextScores[row], nextSequences[row], next[row]) = (from, score, Append(sequences[from], token), token);
                    }
                    // The best running beam is first: it cannot catch up when even its score now is below every finished one.
                    done[b] = last || finished[b].Count == beams
                        && finished[b].Min(h => h.Score) >= nextScores[b * beams] / Math.Pow(length, options.LengthPenalty);
                }
                if (last || done.All(d => d)) break;
                cache.Reorder(torch.tensor(source, device: encoded.device));
                (scores, sequences) = (nextScores, nextSequences);
            }
            return finished.Select(f => f.MaxBy(h => h.Score)!).ToArray();
        }

        private static DecodedSequence Finished(int[] tokens, double logProbability, bool ended, double lengthPenalty)
            => new(tokens, logProbability, logProbability / Math.Pow(tokens.Length + (ended ? 1 : 0), lengthPenalty), ended);

        /// <summary>Adds a finished hypothesis, keeping the best <paramref name="beams"/> (the first of equal scores).</summary>
        private static void Keep(List<DecodedSequence> finished, DecodedSequence hypothesis, int beams)
        {
            if (finished.Count < beams) { finished.Add(hypothesis); return; }
            var worst = finished.MinBy(h => h.Score)!;
            if (hypothesis.Score > worst.Score) finished[finished.IndexOf(worst)] = hypothesis;
        }

        private static int[] Append(int[] sequence, int token)
        {
            var longer = new int[sequence.Length + 1];
            sequence.CopyTo(longer, 0);
            longer[^1] = token;
            return longer;
        }
    }
}
