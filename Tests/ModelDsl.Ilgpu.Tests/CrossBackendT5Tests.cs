using System;
using System.IO;
using System.Linq;
using ModelDsl.TorchSharp;
using TorchSharp;
using Xunit;
using static ModelDsl.Ilgpu.Tests.CrossBackendChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// T5's encoder-decoder on both backends with the same weights: relative position bias in both stacks, cross-attention
    /// over a source of another length (6 source tokens, 5 target tokens) whose last sequence is padded, the tied head's
    /// rescaling. Logits, loss and every gradient (the shared embedding's sums three uses), then 20 AdamW steps.
    /// </summary>
    public sealed class CrossBackendT5Tests : IDisposable
    {
        private const int Batch = 2, SourceTime = 6, Time = 5, PaddedSource = 2, Steps = 20;
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-ilgpu-").FullName;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        private static int Vocab => TinyIlgpuT5.IlgpuModel.Vocab;

        private sealed record Pairs(int[] Source, bool[] SourceMask, int[] Ids, int[] Targets);

        private static Pairs Data(int seed)
        {
            var random = new Random(seed);
            var source = Enumerable.Range(0, Batch * SourceTime).Select(_ => random.Next(Vocab)).ToArray();
            var mask = Enumerable.Range(0, Batch * SourceTime).Select(i => !(i / SourceTime == Batch - 1 && i % SourceTime >= SourceTime - PaddedSource)).ToArray();
            var ids = Enumerable.Range(0, Batch * Time).Select(_ => random.Next(Vocab)).ToArray();
            var targets = Enumerable.Range(0, Batch * Time).Select(i => i % 4 == 3 ? -100 : random.Next(Vocab)).ToArray();
            return new Pairs(source, mask, ids, targets);
        }

        private static torch.Tensor Long(int[] values, int time) => torch.tensor(values.Select(v => (long)v).ToArray(), new long[] { Batch, time });

        private static torch.Tensor Mask(bool[] mask) => torch.tensor(mask, new long[] { Batch, SourceTime });

        private static torch.Tensor ReferenceLoss(SequenceToSequenceModel reference, Pairs d)
            => reference.Loss(Long(d.Source, SourceTime), Long(d.Ids, Time), Long(d.Targets, Time), Mask(d.SourceMask));

        private (SequenceToSequenceModel Reference, IlgpuSequenceToSequenceModel Model) Pair()
        {
            torch.manual_seed(7);
            var reference = TinyIlgpuT5.CreateTorchSharp();
            return (reference, Transfer(reference, TinyIlgpuT5.CreateIlgpu(Device), folder));
        }

        [Fact]
        public void Logits_loss_and_every_gradient_equal_libtorchs()
        {
            var (reference, model) = Pair();
            using var _ = model;
            var d = Data(1);

            using (torch.no_grad())
                AssertClose(reference.Forward(Long(d.Source, SourceTime), Long(d.Ids, Time), Mask(d.SourceMask)).Logits,
                    model.Logits(d.Source, d.Ids, Batch, SourceTime, Time, d.SourceMask), 2e-5, 1e-4, "logits");

            float loss = model.ForwardBackward(d.Source, d.Ids, d.Targets, Batch, SourceTime, Time, d.SourceMask);
            var expected = ReferenceLoss(reference, d);
            expected.backward();
            Assert.Equal(expected.item<float>(), loss, 1e-5f);
            AssertGradients(reference, model);
        }

        [Fact]
        public void Adamw_steps_follow_libtorchs_loss_curve()
        {
            var (reference, model) = Pair();
            using var _ = model;
            var optimizer = AdamW(reference);
            for (int step = 1; step <= Steps; step++)
            {
                var d = Data(100 + step);
                optimizer.zero_grad();
                var expected = ReferenceLoss(reference, d);
                expected.backward();
                ReferenceStep(reference, optimizer);

                float loss = model.ForwardBackward(d.Source, d.Ids, d.Targets, Batch, SourceTime, Time, d.SourceMask);
                Step(model, step);
                AssertSameLoss(expected.item<float>(), loss, step);
            }
            AssertWeights(reference, model, Steps);
        }

        [Fact]
        public void Padded_source_tokens_are_invisible_and_bad_sources_are_refused()
        {
            using var model = TinyIlgpuT5.CreateIlgpu(Device);
            var d = Data(2);
            var before = model.Logits(d.Source, d.Ids, Batch, SourceTime, Time, d.SourceMask);
            var source = (int[])d.Source.Clone();
            source[^1] = (source[^1] + 1) % Vocab; // a padded source token
            Assert.Equal(before, model.Logits(source, d.Ids, Batch, SourceTime, Time, d.SourceMask));

            source[0] = Vocab;
            var e = Assert.Throws<ArgumentException>(() => model.Logits(source, d.Ids, Batch, SourceTime, Time, d.SourceMask));
            Assert.Contains($"Model 'TinyIlgpuT5': source[0, 0] = {Vocab} is outside the vocabulary", e.Message);
            var mask = Assert.Throws<ArgumentException>(() => model.Logits(d.Source, d.Ids, Batch, SourceTime, Time, new bool[3]));
            Assert.Contains("the source mask has 3 elements; [Batch=2, SourceTime=6] needs 12", mask.Message);
        }
    }
}
