using System;
using System.Linq;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// T5's relative-position buckets (<see cref="TransformerModel.RelativePositionBuckets"/>) against a table derived
    /// by hand from Hugging Face's _relative_position_bucket, and against that function's order of operations over
    /// every distance of many configurations. The relative position is key - query: negative for keys before the
    /// query, positive after it.
    /// </summary>
    public sealed class T5RelativePositionBucketTests
    {
        private readonly ITestOutputHelper log;

        public T5RelativePositionBucketTests(ITestOutputHelper log) => this.log = log;

        private static long[] Buckets(long[] relative, bool bidirectional, int buckets, int maxDistance)
        {
            using var scope = torch.NewDisposeScope();
            return TransformerModel.RelativePositionBuckets(torch.tensor(relative), bidirectional, buckets, maxDistance).data<long>().ToArray();
        }

        private static void AssertTable((long Relative, long Bucket)[] table, bool bidirectional, int buckets, int maxDistance)
        {
            var actual = Buckets(table.Select(t => t.Relative).ToArray(), bidirectional, buckets, maxDistance);
            for (int i = 0; i < table.Length; i++)
                Assert.True(table[i].Bucket == actual[i],
                    $"{(bidirectional ? "bidirectional" : "causal")} {buckets} buckets, max distance {maxDistance}: " +
                    $"relative position {table[i].Relative} should be bucket {table[i].Bucket}, got {actual[i]}");
        }

        /// <summary>
        /// The encoder's buckets with Hugging Face's defaults (32 buckets, max distance 128). Bidirectional: each
        /// direction gets half, 16 buckets: keys at or before the query (relative &lt;= 0) use buckets 0..15, keys
        /// after it (relative &gt; 0) 16..31. Within a half, with n = |relative|, the first half of the 16 (8 buckets)
        /// are exact: n = 0..7 is bucket n. From n = 8 on the bucket is 8 + floor(log(n / 8) / log(128 / 8) x 8) =
        /// 8 + floor(2 log2(n / 8)): each bucket spans a factor sqrt(2), so bucket 8 + k starts at n = 8 x 2^(k/2):
        /// 8 (k=0), 11.3 (1), 16 (2), 22.6 (3), 32 (4), 45.3 (5), 64 (6), 90.5 (7) and 128 (8), where 8 + 8 = 16 is
        /// clamped to the last bucket of the half, 15: every distance of 91 or more shares it. (Exact powers of two
        /// fall on a boundary, where a one-ulp error of a float32 log could go either way; the table avoids them.)
        /// </summary>
        [Fact]
        public void Bidirectional_buckets_with_32_buckets_and_max_distance_128_follow_the_hand_derived_table()
        {
            AssertTable(new (long, long)[]
            {
                (0, 0),                  // the query itself
                (-1, 1), (-7, 7),        // exact, keys before the query
                (1, 17), (7, 23),        // exact, keys after: 16 + n
                (-8, 8),                 // first logarithmic bucket: 8 + floor(2 log2(1)) = 8
                (-11, 8),                // 2 log2(11/8) = 0.92
                (-12, 9),                // 2 log2(12/8) = 1.17
                (-15, 9),                // 2 log2(15/8) = 1.81
                (-22, 10),               // 2 log2(22/8) = 2.92
                (-23, 11),               // 2 log2(23/8) = 3.05
                (-45, 12),               // 2 log2(45/8) = 4.98
                (-46, 13),               // 2 log2(46/8) = 5.05
                (-90, 14),               // 2 log2(90/8) = 6.98
                (-91, 15),               // 2 log2(91/8) = 7.02
                (-127, 15),              // 2 log2(127/8) = 7.98
                (-128, 15),              // 8 + 8 = 16, clamped to 15
                (-1000, 15),             // beyond max distance: the clamp
                (8, 24), (12, 25), (23, 27), (91, 31), (128, 31), (5000, 31), // the same after the query, + 16
            }, bidirectional: true, buckets: 32, maxDistance: 128);
        }

        /// <summary>
        /// The decoder's buckets with the same defaults. Causal: only keys at or before the query matter, so all 32
        /// buckets describe the past, n = max(-relative, 0) (a key after the query, which the causal mask hides
        /// anyway, is bucket 0). The first 16 are exact (n = 0..15); from n = 16 the bucket is
        /// 16 + floor(log(n / 16) / log(128 / 16) x 16) = 16 + floor(16/3 log2(n / 16)): bucket 16 + k starts at
        /// n = 16 x 2^(3k/16), a factor 1.14 per bucket, and 16 + 16 = 32 at n = 128 is clamped to 31.
        /// </summary>
        [Fact]
        public void Causal_buckets_with_32_buckets_and_max_distance_128_follow_the_hand_derived_table()
        {
            AssertTable(new (long, long)[]
            {
                (0, 0), (-1, 1), (-15, 15), // exact
                (5, 0), (100, 0),        // keys after the query: distance 0
                (-16, 16),               // 16 + floor(16/3 log2(1)) = 16
                (-17, 16),               // 16/3 log2(17/16) = 0.47
                (-18, 16),               // 16/3 log2(18/16) = 0.91
                (-19, 17),               // 16/3 log2(19/16) = 1.32
                (-20, 17),               // 16/3 log2(20/16) = 1.72
                (-21, 18),               // 16/3 log2(21/16) = 2.09
                (-31, 21),               // 16/3 log2(31/16) = 5.09
                (-33, 21),               // 16/3 log2(33/16) = 5.57
                (-63, 26),               // 16/3 log2(63/16) = 10.55
                (-100, 30),              // 16/3 log2(100/16) = 14.10
                (-127, 31),              // 16/3 log2(127/16) = 15.94
                (-128, 31),              // 16 + 16 = 32, clamped
                (-500, 31),
            }, bidirectional: false, buckets: 32, maxDistance: 128);
        }

        /// <summary>
        /// TinyT5's configuration (8 buckets, max distance 16), the one the numerics tests run. Bidirectional: 4 buckets
        /// per direction, 2 exact (n = 0, 1), then 2 + floor(log(n/2) / log(8) x 2) = 2 + floor(2/3 log2(n/2)): bucket 3
        /// from n = 2 x 2^1.5 = 5.66, i.e. n = 6; bucket 4 would start at n = 16 and is clamped to 3. So each half is
        /// {0}, {1}, {2..5}, {6..}. Causal: 8 buckets, 4 exact, then 4 + floor(log(n/4) / log(4) x 4) = 4 + floor(2 log2(n/4)):
        /// bucket 5 from n = 5.66 (6), 6 from 8, 7 from 11.3 (12), and 8 at n = 16 clamped to 7.
        /// </summary>
        [Fact]
        public void Buckets_of_TinyT5_with_8_buckets_and_max_distance_16_follow_the_hand_derived_table()
        {
            AssertTable(new (long, long)[]
            {
                (0, 0), (-1, 1), (1, 5),
                (-2, 2), (-5, 2),        // 2/3 log2(5/2) = 0.88
                (-6, 3),                 // 2/3 log2(6/2) = 1.06
                (-15, 3), (-16, 3), (-300, 3), // clamped
                (2, 6), (5, 6), (6, 7), (15, 7), (300, 7),
            }, bidirectional: true, buckets: 8, maxDistance: 16);
            AssertTable(new (long, long)[]
            {
                (0, 0), (-3, 3), (3, 0),
                (-4, 4), (-5, 4),        // 2 log2(5/4) = 0.64
                (-6, 5), (-7, 5),        // 2 log2(6/4) = 1.17, 2 log2(7/4) = 1.61
                (-9, 6), (-11, 6),       // 2 log2(9/4) = 2.34, 2 log2(11/4) = 2.92
                (-12, 7), (-15, 7),      // 2 log2(12/4) = 3.17
                (-16, 7), (-40, 7),      // clamped
            }, bidirectional: false, buckets: 8, maxDistance: 16);
        }

        /// <summary>
        /// Hugging Face's _relative_position_bucket, statement by statement in libtorch ops (float32 log, then the
        /// truncation to long of the logarithmic part alone, then max_exact added), over every relative position in
        /// [-3 MaxDistance, 3 MaxDistance] for many configurations, both directions. Equal buckets are required.
        /// </summary>
        [Fact]
        public void Buckets_equal_Hugging_Face_order_of_operations_for_every_distance_of_many_configurations()
        {
            using var scope = torch.NewDisposeScope();
            int checkedCount = 0;
            foreach (int buckets in new[] { 4, 6, 8, 10, 16, 20, 32, 48, 64, 128 })
                foreach (int maxDistance in new[] { 8, 16, 20, 32, 50, 64, 100, 128, 256, 1000 })
                    foreach (bool bidirectional in new[] { true, false })
                    {
                        int half = bidirectional ? buckets / 2 : buckets;
                        if (half / 2 < 1 || maxDistance <= half / 2) continue; // no logarithmic range
                        var relative = torch.arange(-3L * maxDistance, 3L * maxDistance + 1, dtype: ScalarType.Int64);
                        var expected = HuggingFaceBuckets(relative, bidirectional, buckets, maxDistance);
                        var actual = TransformerModel.RelativePositionBuckets(relative, bidirectional, buckets, maxDistance);
                        if (!actual.eq(expected).all().item<bool>())
                        {
                            var differ = actual.ne(expected).nonzero().squeeze(-1);
                            long at = differ[0].item<long>();
                            Assert.Fail($"{(bidirectional ? "bidirectional" : "causal")} {buckets} buckets, max distance {maxDistance}: " +
                                        $"{differ.shape[0]} relative position(s) differ, the first {relative[at].item<long>()}: " +
                                        $"bucket {actual[at].item<long>()}, Hugging Face {expected[at].item<long>()}");
                        }
                        checkedCount++;
                    }
            log.WriteLine($"{checkedCount} configurations agree at every relative position");
        }

        /// <summary>Hugging Face's _relative_position_bucket, line by line (the reference other T5 tests use too).</summary>
        internal static Tensor HuggingFaceBuckets(Tensor relativePosition, bool bidirectional, int numBuckets, int maxDistance)
        {
            var relativeBuckets = torch.zeros_like(relativePosition);
            if (bidirectional)
            {
                numBuckets /= 2;
                relativeBuckets = relativeBuckets + relativePosition.gt(0).to(ScalarType.Int64) * numBuckets;
                relativePosition = relativePosition.abs();
            }
            else
            {
                relativePosition = -torch.minimum(relativePosition, torch.zeros_like(relativePosition));
            }
            int maxExact = numBuckets / 2;
            var isSmall = relativePosition.lt(maxExact);
            var logarithmic = ((relativePosition.to(ScalarType.Float32) / maxExact).log()
                               / Math.Log((double)maxDistance / maxExact) * (numBuckets - maxExact)).to(ScalarType.Int64);
            var ifLarge = maxExact + logarithmic;
            ifLarge = torch.minimum(ifLarge, torch.full_like(ifLarge, numBuckets - 1));
            return relativeBuckets + torch.where(isSmall, relativePosition, ifLarge);
        }
    }
}
