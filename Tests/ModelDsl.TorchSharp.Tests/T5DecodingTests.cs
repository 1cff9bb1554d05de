using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using ModelDsl.Checkpoints;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// Decoding of the generated T5 (TinyT5, float64, random weights, padded sources) with a KV cache against the
    /// teacher-forced forward pass, greedy against argmax decoding without a cache, beam search with one beam against
    /// greedy, beam scores against teacher-forced log-probabilities, and beam search on a constructed chain whose most
    /// probable sequence greedy misses. Cached and uncached paths differ by rounding only (1e-10 + 1e-10 max|ref|).
    /// </summary>
    public sealed class T5DecodingTests
    {
        private const double Atol = 1e-10, Rtol = 1e-10;
        private readonly ITestOutputHelper log;

        public T5DecodingTests(ITestOutputHelper log) => this.log = log;

        private static TinyT5.TorchSharpModel CreateModel(ulong seed)
        {
            var model = TinyT5.CreateTorchSharp();
            model.to(ScalarType.Float64);
            T5NumericsTests.Randomize(model, seed);
            model.eval();
            return model;
        }

        [Fact]
        public void Cached_decoding_equals_the_teacher_forced_forward_also_after_reordering_rows()
        {
            using var scope = torch.NewDisposeScope();
            var model = CreateModel(401);
            var (source, mask) = T5NumericsTests.PaddedSource(402);
            var ids = Numerics.RandomIds(3, 16, 50, 403);
            using var noGrad = torch.no_grad();
            var full = model.Forward(source, ids, mask).Logits;

            var encoded = model.EncodeSource(source, mask);
            using var cache = model.CreateCache(3);
            Numerics.AssertClose(model.DecodeNext(ids.narrow(1, 0, 4), encoded, mask, cache), full.narrow(1, 0, 4), Atol, Rtol, "prefill of 4 positions", log);
            double worst = 0;
            for (int t = 4; t < 9; t++)
                worst = Math.Max(worst, Numerics.AssertClose(model.DecodeNext(ids.narrow(1, t, 1), encoded, mask, cache), full.narrow(1, t, 1), Atol, Rtol, $"step {t}"));
            log.WriteLine($"cached steps 4..8: max |diff| = {worst:E2}");

            // Beam search reorders the cache's rows (self-attention keys and the encoder's): rows 2, 0, 0 then continue as
            // those rows of the teacher-forced pass.
            var rows = torch.tensor(new long[] { 2, 0, 0 });
            cache.Reorder(rows);
            var reordered = model.Forward(source.index_select(0, rows), ids.index_select(0, rows), mask.index_select(0, rows)).Logits;
            for (int t = 9; t < 16; t++)
                worst = Math.Max(worst, Numerics.AssertClose(
                    model.DecodeNext(ids.index_select(0, rows).narrow(1, t, 1), encoded.index_select(0, rows), mask.index_select(0, rows), cache),
                    reordered.narrow(1, t, 1), Atol, Rtol, $"step {t} after reordering"));
            log.WriteLine($"cached steps 9..15 after reordering the rows: max |diff| = {worst:E2}");
            Assert.Equal(16, cache.Length);
            var overflow = Assert.ThrowsAny<ArgumentException>(() => model.DecodeNext(ids.narrow(1, 0, 1), encoded, mask, cache));
            Assert.Contains("TinyT5", overflow.Message);
        }

        /// <summary>Sum of the teacher-forced log-probabilities of a decoded sequence (its end token included when it ended).</summary>
        private static double TeacherForcedLogProbability(SequenceToSequenceModel model, Tensor source, DecodedSequence decoded, DecodingOptions options)
        {
            var targets = decoded.Ended ? decoded.Tokens.Append(options.EndId).ToArray() : decoded.Tokens;
            var input = new[] { options.DecoderStartId }.Concat(targets).Take(targets.Length).Select(t => (long)t).ToArray();
            using var noGrad = torch.no_grad();
            var logProbabilities = model.Forward(source, torch.tensor(input).unsqueeze(0)).Logits[0].log_softmax(-1);
            return logProbabilities.gather(-1, torch.tensor(targets.Select(t => (long)t).ToArray()).unsqueeze(-1)).sum().item<double>();
        }

        [Fact]
        public void Greedy_decoding_equals_argmax_decoding_without_a_cache()
        {
            using var scope = torch.NewDisposeScope();
            var model = CreateModel(411);
            var (source, mask) = T5NumericsTests.PaddedSource(412);
            long[] lengths = { 13, 8, 4 };
            var options = new DecodingOptions(MaxTokens: 12); // with these weights row 1 ends, rows 0 and 2 do not
            var greedy = model.Greedy(source, mask, options);

            for (int b = 0; b < 3; b++)
            {
                var alone = source[b].narrow(0, 0, lengths[b]).unsqueeze(0);
                var expected = new List<int>();
                bool ended = false;
                using (torch.no_grad())
                    while (expected.Count < options.MaxTokens && !ended)
                    {
                        var input = new[] { 0L }.Concat(expected.Select(t => (long)t)).ToArray();
                        int next = (int)model.Forward(alone, torch.tensor(input).unsqueeze(0)).Logits[0, -1].argmax().item<long>();
                        if (next == options.EndId) ended = true;
                        else expected.Add(next);
                    }
                log.WriteLine($"row {b}: {string.Join(" ", greedy[b].Tokens)}{(greedy[b].Ended ? " <end>" : "")}, log p = {greedy[b].LogProbability:F6}");
                Assert.Equal(expected, greedy[b].Tokens);
                Assert.Equal(ended, greedy[b].Ended);
                Assert.Equal(TeacherForcedLogProbability(model, alone, greedy[b], options), greedy[b].LogProbability, 1e-10);
                Assert.Equal(greedy[b].LogProbability / (greedy[b].Tokens.Length + (ended ? 1 : 0)), greedy[b].Score, 1e-12);
            }
            Assert.Contains(greedy, g => g.Ended);
            Assert.Contains(greedy, g => !g.Ended);
        }

        [Fact]
        public void Beam_search_with_one_beam_equals_greedy()
        {
            using var scope = torch.NewDisposeScope();
            var model = CreateModel(421);
            var (source, mask) = T5NumericsTests.PaddedSource(422);
            var options = new DecodingOptions(MaxTokens: 12, BeamSize: 1);
            var greedy = model.Greedy(source, mask, options);
            var beam = model.BeamSearch(source, mask, options);
            for (int b = 0; b < 3; b++)
            {
                Assert.Equal(greedy[b].Tokens, beam[b].Tokens);
                Assert.Equal(greedy[b].Ended, beam[b].Ended);
                Assert.Equal(greedy[b].LogProbability, beam[b].LogProbability, 1e-10);
            }
            Assert.Equal(greedy.Select(g => g.Tokens), model.Generate(source, mask, options).Select(g => g.Tokens)); // BeamSize 1 is greedy
        }

        /// <summary>
        /// Beam search over a batch of padded sources: every returned score is the teacher-forced log-probability of its
        /// tokens (so the cache followed the beams through every reordering), and with the same length penalty it scores
        /// at least as well as greedy on each row.
        /// </summary>
        [Theory]
        [InlineData(0.0)]
        [InlineData(1.0)]
        public void Beam_search_scores_are_teacher_forced_log_probabilities_and_at_least_greedy(double lengthPenalty)
        {
            using var scope = torch.NewDisposeScope();
            var model = CreateModel(431);
            var (source, mask) = T5NumericsTests.PaddedSource(432);
            long[] lengths = { 13, 8, 4 };
            var options = new DecodingOptions(MaxTokens: 10, BeamSize: 4, LengthPenalty: lengthPenalty);
            var beam = model.Generate(source, mask, options);
            var greedy = model.Greedy(source, mask, options);
            for (int b = 0; b < 3; b++)
            {
                var alone = source[b].narrow(0, 0, lengths[b]).unsqueeze(0);
                double teacherForced = TeacherForcedLogProbability(model, alone, beam[b], options);
                int length = beam[b].Tokens.Length + (beam[b].Ended ? 1 : 0);
                log.WriteLine($"length penalty {lengthPenalty}, row {b}: beam {string.Join(" ", beam[b].Tokens)}{(beam[b].Ended ? " <end>" : "")} " +
                              $"score {beam[b].Score:F4} (log p {beam[b].LogProbability:F4}); greedy score {greedy[b].Score:F4}");
                Assert.Equal(teacherForced, beam[b].LogProbability, 1e-10);
                Assert.Equal(beam[b].LogProbability / Math.Pow(length, lengthPenalty), beam[b].Score, 1e-12);
                Assert.True(beam[b].Score >= greedy[b].Score - 1e-12, $"row {b}: beam search scored {beam[b].Score}, greedy {greedy[b].Score}");
            }
        }

        // ------------------------------------------------------------------------------------------------------
        // A constructed case: a Markov chain over 6 tokens as a sequence-to-sequence model
        // ------------------------------------------------------------------------------------------------------

        /// <summary>Ids: 0 start (and pad), 1 end, 2..5 the letters a, b, c, d.</summary>
        private const int Start = 0, End = 1, A = 2, B = 3, C = 4, D = 5;

        /// <summary>
        /// P(next | current), rows by current token, columns [start, end, a, b, c, d]. From the start a is most likely
        /// (0.5) but is followed by nothing likely to end; b (0.4) ends with probability 0.9; d repeats itself (0.54).
        /// </summary>
        private static readonly double[][] Chain =
        {
            new[] { 0.00, 0.01, 0.50, 0.40, 0.05, 0.04 }, // start
            new[] { 0.20, 0.20, 0.15, 0.15, 0.15, 0.15 }, // end (never continued)
            new[] { 0.01, 0.05, 0.10, 0.20, 0.30, 0.34 }, // a
            new[] { 0.01, 0.90, 0.03, 0.02, 0.02, 0.02 }, // b
            new[] { 0.01, 0.50, 0.10, 0.10, 0.10, 0.19 }, // c
            new[] { 0.01, 0.30, 0.05, 0.05, 0.05, 0.54 }, // d
        };

        /// <summary>A model whose decoder ignores the source: logits are log P(next | current token) of <see cref="Chain"/>.</summary>
        private sealed class MarkovChainModel : SequenceToSequenceModel
        {
            private readonly Tensor logTable;

            public MarkovChainModel() : base(new ModelCard("MarkovChain", "EncoderDecoder", "none", "SequenceToSequence", vocab: 6, context: 8, hidden: 1,
                heads: 1, kvHeads: 1, headDim: 1, encoderLayers: 0, decoderLayers: 1, inner: 0, classes: 0, segmentTypes: 0, imageSize: 0,
                patchSize: 0, channels: 0, experts: 0, topK: 0, parameterCount: 0, forwardFlops: Array.Empty<CostTerm>(), activationBytes: Array.Empty<CostTerm>()))
            {
                logTable = torch.tensor(Chain.SelectMany(r => r).ToArray(), 6, 6, ScalarType.Float64).log().DetachFromDisposeScope();
            }

            protected override CheckpointNames CheckpointNames { get; } = new("none", null, Array.Empty<string>(), Array.Empty<(string, string)>());

            public override void ResetParameters() { }

            protected override Tensor TaskLoss(Tensor logits, Tensor targets) => CrossEntropy(logits, targets);

            protected override Tensor Encode(Tensor source, Tensor sourceMask, ForwardState state) => source.to(ScalarType.Float64).unsqueeze(-1);

            protected override Tensor Decode(Tensor ids, Tensor encoded, Tensor sourceMask, ForwardState state)
                => logTable.index_select(0, ids.flatten()).view(ids.shape[0], ids.shape[1], 6);

            protected override Tensor Logits(Tensor source, Tensor sourceMask, Tensor ids, ForwardState state)
                => Decode(ids, Encode(source, sourceMask, state), sourceMask, state);
        }

        /// <summary>Every sequence the chain can produce in at most <paramref name="maxTokens"/> tokens, with its score.</summary>
        private static (int[] Tokens, bool Ended, double Score) MostProbable(int maxTokens, double lengthPenalty)
        {
            var best = (Tokens: Array.Empty<int>(), Ended: false, Score: double.NegativeInfinity);
            void Visit(List<int> prefix, int current, double logProbability)
            {
                // Ending here...
                double ended = logProbability + Math.Log(Chain[current][End]);
                double score = ended / Math.Pow(prefix.Count + 1, lengthPenalty);
                if (score > best.Score) best = (prefix.ToArray(), true, score);
                if (prefix.Count + 1 == maxTokens)
                {
                    // ...or stopping at MaxTokens with one more token that is not the end.
                    foreach (int token in new[] { Start, A, B, C, D })
                    {
                        double unfinished = (logProbability + Math.Log(Chain[current][token])) / Math.Pow(maxTokens, lengthPenalty);
                        if (unfinished > best.Score) best = (prefix.Append(token).ToArray(), false, unfinished);
                    }
                    return;
                }
                foreach (int token in new[] { Start, A, B, C, D })
                {
                    if (Chain[current][token] == 0) continue;
                    prefix.Add(token);
                    Visit(prefix, token, logProbability + Math.Log(Chain[current][token]));
                    prefix.RemoveAt(prefix.Count - 1);
                }
            }
            Visit(new List<int>(), Start, 0);
            return best;
        }

        /// <summary>
        /// Greedy takes a (0.5), then d (0.34) and d (0.54) for ever: a d d d d after 5 tokens, probability
        /// 0.5 x 0.34 x 0.54^3 = 0.027, never ended. Two beams keep b (0.4) beside a, and b's end (0.9) finishes
        /// b &lt;end&gt; with probability 0.36 at the second step, which no continuation of a reaches: with length
        /// penalty 0 that is the answer, and exhaustive search over every sequence agrees. Length penalty 2 divides
        /// log-probabilities by length squared: b &lt;end&gt; scores ln 0.36 / 4 = -0.255, a d d d d scores
        /// ln 0.027 / 25 = -0.145 and wins, as exhaustive search also finds.
        /// </summary>
        [Fact]
        public void Beam_search_finds_the_most_probable_sequence_of_a_constructed_chain_that_greedy_misses()
        {
            using var scope = torch.NewDisposeScope();
            using var model = new MarkovChainModel();
            var source = torch.zeros(new long[] { 1, 3 }, ScalarType.Int64);
            var greedy = model.Greedy(source, null, new DecodingOptions(MaxTokens: 5))[0];
            Assert.Equal(new[] { A, D, D, D, D }, greedy.Tokens);
            Assert.False(greedy.Ended);
            Assert.Equal(Math.Log(0.5 * 0.34 * 0.54 * 0.54 * 0.54), greedy.LogProbability, 1e-12);

            var probable = model.BeamSearch(source, null, new DecodingOptions(MaxTokens: 5, BeamSize: 2, LengthPenalty: 0))[0];
            log.WriteLine($"length penalty 0: beam {string.Join(" ", probable.Tokens)} ended {probable.Ended}, log p {probable.LogProbability:F4}; greedy log p {greedy.LogProbability:F4}");
            Assert.Equal(new[] { B }, probable.Tokens);
            Assert.True(probable.Ended);
            Assert.Equal(Math.Log(0.4 * 0.9), probable.LogProbability, 1e-12);
            var exhaustive = MostProbable(5, 0);
            Assert.Equal(exhaustive.Tokens, probable.Tokens);
            Assert.Equal(exhaustive.Score, probable.Score, 1e-12);

            var longer = model.BeamSearch(source, null, new DecodingOptions(MaxTokens: 5, BeamSize: 2, LengthPenalty: 2))[0];
            log.WriteLine($"length penalty 2: beam {string.Join(" ", longer.Tokens)} ended {longer.Ended}, score {longer.Score:F4}");
            Assert.Equal(new[] { A, D, D, D, D }, longer.Tokens);
            Assert.False(longer.Ended);
            Assert.Equal(Math.Log(0.5 * 0.34 * 0.54 * 0.54 * 0.54) / 25, longer.Score, 1e-12);
            exhaustive = MostProbable(5, 2);
            Assert.Equal(exhaustive.Tokens, longer.Tokens);
        }

        // ------------------------------------------------------------------------------------------------------
        // Arguments, cancellation
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Decoding_rejects_bad_options_and_ids_naming_the_model_and_the_value()
        {
            using var scope = torch.NewDisposeScope();
            var model = CreateModel(441);
            var source = Numerics.RandomIds(2, 5, 50, 442);

            void Rejects(Action decode, params string[] fragments)
            {
                var e = Assert.ThrowsAny<ArgumentException>(decode);
                log.WriteLine(e.GetType().Name + ": " + e.Message);
                foreach (var fragment in fragments) Assert.Contains(fragment, e.Message);
            }

            Rejects(() => new DecodingOptions(MaxTokens: 0), "MaxTokens", "0");
            Rejects(() => new DecodingOptions(MaxTokens: 5, BeamSize: 0), "BeamSize", "0");
            Rejects(() => _ = new DecodingOptions(MaxTokens: 5) with { LengthPenalty = double.NaN }, "LengthPenalty", "NaN");
            Rejects(() => new DecodingOptions(MaxTokens: 5, EndId: -1), "EndId", "-1");
            Rejects(() => new DecodingOptions(MaxTokens: 5, DecoderStartId: -2), "DecoderStartId", "-2");
            Rejects(() => model.Generate(source, null, new DecodingOptions(MaxTokens: 17)), "TinyT5", "MaxTokens 17", "context of 16");
            Rejects(() => model.Generate(source, null, new DecodingOptions(MaxTokens: 5, EndId: 50)), "TinyT5", "EndId 50", "[0, 50)");
            Rejects(() => model.Generate(source, null, new DecodingOptions(MaxTokens: 5, BeamSize: 3, DecoderStartId: 64)), "TinyT5", "DecoderStartId 64");
            Rejects(() => model.Generate(source.to(ScalarType.Int32), null, new DecodingOptions(MaxTokens: 5)), "TinyT5", "int64");
            Rejects(() => model.Generate(source, torch.ones(2, 4, ScalarType.Bool), new DecodingOptions(MaxTokens: 5)), "TinyT5", "source mask", "[2, 4]");
            Rejects(() => model.Generate(new[] { 3, 50 }, new DecodingOptions(MaxTokens: 5)), "TinyT5", "token id 50");
        }

        [Fact]
        public void Decoding_stops_when_cancelled_and_restores_the_training_mode()
        {
            using var scope = torch.NewDisposeScope();
            var model = CreateModel(451);
            var source = Numerics.RandomIds(2, 5, 50, 452);
            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            model.train();
            Assert.Throws<OperationCanceledException>(() => model.Generate(source, null, new DecodingOptions(MaxTokens: 5), cancelled.Token));
            Assert.True(model.training);
            Assert.Throws<OperationCanceledException>(() => model.Generate(source, null, new DecodingOptions(MaxTokens: 5, BeamSize: 2), cancelled.Token));
            Assert.True(model.training);
            model.Generate(source, null, new DecodingOptions(MaxTokens: 5, BeamSize: 2));
            Assert.True(model.training);
        }
    }
}
