using System;
using System.Linq;
using Xunit;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>Bad input to a generated ILGPU model is refused on the host, by name, before any kernel reads it.</summary>
    public sealed class IlgpuModelInputTests
    {
        private static int[] Ids(int count) => Enumerable.Range(0, count).Select(i => i % 7).ToArray();

        [Fact]
        public void Token_ids_sequence_length_and_targets_are_checked_against_the_declaration()
        {
            using var gpt = TinyIlgpuGpt.CreateIlgpu(Device);
            var ids = Ids(6);
            ids[4] = 19;
            var e = Assert.Throws<ArgumentException>(() => gpt.Logits(ids, 2, 3));
            Assert.Contains("Model 'TinyIlgpuGpt': ids[1, 1] = 19 is outside the vocabulary [0, Vocab = 19)", e.Message);

            var tooLong = Assert.Throws<ArgumentOutOfRangeException>(() => gpt.Logits(Ids(17), 1, 17));
            Assert.Contains("sequences have 1 to Context = 16 tokens, not 17", tooLong.Message);

            var ignored = Assert.Throws<ArgumentException>(() => gpt.Loss(Ids(6), Enumerable.Repeat(-100, 6).ToArray(), 2, 3));
            Assert.Contains("every one of the targets is -100 (ignored)", ignored.Message);

            var shortTargets = Assert.Throws<ArgumentException>(() => gpt.Loss(Ids(6), Ids(5), 2, 3));
            Assert.Contains("targets has 5 elements; [Batch=2, Time=3] needs 6", shortTargets.Message);
        }

        [Fact]
        public void Segments_padding_masks_and_labels_are_checked_for_encoders()
        {
            using var bert = TinyIlgpuBert.CreateIlgpu(Device);
            var segments = new int[6];
            segments[5] = 2;
            var e = Assert.Throws<ArgumentException>(() => bert.Logits(Ids(6), 2, 3, segments));
            Assert.Contains("Model 'TinyIlgpuBert': segments[1, 2] = 2 is outside the segment types [0, 2)", e.Message);

            var mask = Assert.Throws<ArgumentException>(() => bert.Logits(Ids(6), 2, 3, mask: new bool[5]));
            Assert.Contains("the padding mask has 5 elements; [Batch=2, Time=3] needs 6", mask.Message);

            using var classifier = TinyIlgpuClassifier.CreateIlgpu(Device);
            var labels = Assert.Throws<ArgumentException>(() => classifier.Loss(Ids(6), new[] { 0, 3 }, 2, 3));
            Assert.Contains("Model 'TinyIlgpuClassifier': labels[1] = 3 is neither a class below Classes = 3 nor -100 (ignored)", labels.Message);

            var perToken = Assert.Throws<ArgumentException>(() => classifier.Loss(Ids(6), new int[6], 2, 3));
            Assert.Contains("labels has 6 elements; [Batch=2] needs 2", perToken.Message);

            var none = Assert.Throws<ArgumentException>(() => classifier.ForwardBackward(Ids(6), ReadOnlySpan<int>.Empty, 2, 3));
            Assert.Contains("the loss needs labels", none.Message);
        }
    }
}
