using System;
using System.IO;
using System.Linq;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using TorchSharp;
using Xunit;
using static ModelDsl.Ilgpu.Tests.CrossBackendChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>BERT's masked language model: segments, the embedding norm, post-norm layers, the MLM head and its tied decoder.</summary>
    public sealed class CrossBackendBertTests : CrossBackendEncoderTests<MaskedBatch>
    {
        protected override EncoderModel<MaskedBatch> CreateReference() => TinyIlgpuBert.CreateTorchSharp();

        protected override IlgpuEncoderModel CreateModel() => TinyIlgpuBert.CreateIlgpu(Device);

        protected override bool Segments => true;

        protected override int[] Targets(Random random)
            => Enumerable.Range(0, Batch * Time).Select(i => i % 3 == 1 && !IsPadding(i) ? random.Next(TinyIlgpuBert.IlgpuModel.Vocab) : -100).ToArray();

        protected override torch.Tensor ReferenceLoss(torch.Tensor ids, torch.Tensor targets, torch.Tensor segments, torch.Tensor mask)
            => ((MaskedLanguageModel)Reference).Loss(ids, targets.reshape(Batch, Time), segments, mask);
    }

    /// <summary>
    /// A pre-norm sequence classifier: the final norm, the pooler (dense + tanh on the first token) and the classifier;
    /// 5 training steps (the encoder's schedule is BERT's, checked over 20; the emulator's time goes to the families).
    /// </summary>
    public sealed class CrossBackendClassifierTests : CrossBackendEncoderTests<ClassificationBatch>
    {
        protected override EncoderModel<ClassificationBatch> CreateReference() => TinyIlgpuClassifier.CreateTorchSharp();

        protected override IlgpuEncoderModel CreateModel() => TinyIlgpuClassifier.CreateIlgpu(Device);

        protected override int TrainingSteps => 5;

        protected override int[] Targets(Random random)
            => Enumerable.Range(0, Batch).Select(_ => random.Next(TinyIlgpuClassifier.IlgpuModel.Classes)).ToArray();

        protected override torch.Tensor ReferenceLoss(torch.Tensor ids, torch.Tensor labels, torch.Tensor segments, torch.Tensor mask)
            => ((SequenceClassificationModel)Reference).Loss(ids, labels, segments, mask);
    }

    /// <summary>
    /// The encoder families on both backends with the same weights (moved through a safetensors file), as
    /// CrossBackendTests does for decoders: logits, loss and every parameter gradient, then AdamW steps. The
    /// batch has padding (the last sequence's final tokens), so the attention's padding mask is checked too; padded
    /// positions carry no target. Tolerances: <see cref="CrossBackendChecks"/>.
    /// </summary>
    public abstract class CrossBackendEncoderTests<TBatch> : IDisposable
    {
        protected const int Batch = 3, Time = 7, Padded = 3;
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-ilgpu-").FullName;

        /// <summary>The TorchSharp model (the reference), created by <see cref="Pair"/>; the ILGPU model gets its weights.</summary>
        protected EncoderModel<TBatch> Reference { get; private set; } = null!;

        protected abstract EncoderModel<TBatch> CreateReference();

        protected abstract IlgpuEncoderModel CreateModel();

        protected virtual bool Segments => false;

        protected virtual int TrainingSteps => 20;

        /// <summary>Targets for the batch: per token (-100 where unmasked) or per sequence.</summary>
        protected abstract int[] Targets(Random random);

        protected abstract torch.Tensor ReferenceLoss(torch.Tensor ids, torch.Tensor targets, torch.Tensor segments, torch.Tensor mask);

        public void Dispose() => Directory.Delete(folder, recursive: true);

        /// <summary>The last sequence's final <see cref="Padded"/> tokens are padding.</summary>
        protected static bool IsPadding(int token) => token / Time == Batch - 1 && token % Time >= Time - Padded;

        private (int[] Ids, int[] Segments, bool[] Mask, int[] Targets) Data(int seed)
        {
            var random = new Random(seed);
            var ids = Enumerable.Range(0, Batch * Time).Select(_ => random.Next(Reference.Card.Vocab)).ToArray();
            var segments = Enumerable.Range(0, Batch * Time).Select(i => Segments && i % Time >= Time / 2 ? 1 : 0).ToArray();
            var mask = Enumerable.Range(0, Batch * Time).Select(i => !IsPadding(i)).ToArray();
            return (ids, segments, mask, Targets(random));
        }

        private IlgpuEncoderModel Pair()
        {
            torch.manual_seed(7);
            Reference = CreateReference();
            return Transfer(Reference, CreateModel(), folder);
        }

        private static torch.Tensor Long(int[] values, params long[] shape) => torch.tensor(values.Select(v => (long)v).ToArray(), shape);

        private torch.Tensor Loss((int[] Ids, int[] Segments, bool[] Mask, int[] Targets) d)
            => ReferenceLoss(Long(d.Ids, Batch, Time), Long(d.Targets, d.Targets.Length), Long(d.Segments, Batch, Time), torch.tensor(d.Mask, new long[] { Batch, Time }));

        [Fact]
        public void Logits_loss_and_every_gradient_equal_libtorchs()
        {
            using var model = Pair();
            var d = Data(1);

            var logits = model.Logits(d.Ids, Batch, Time, d.Segments, d.Mask);
            using (torch.no_grad())
                AssertClose(Reference.Forward(Long(d.Ids, Batch, Time), Long(d.Segments, Batch, Time), torch.tensor(d.Mask, new long[] { Batch, Time })).Logits,
                    logits, 2e-5, 1e-4, "logits");

            float loss = model.ForwardBackward(d.Ids, d.Targets, Batch, Time, d.Segments, d.Mask);
            var expected = Loss(d);
            expected.backward();
            Assert.Equal(expected.item<float>(), loss, 1e-5f);
            AssertGradients(Reference, model);
        }

        [Fact]
        public void Padding_is_invisible_to_the_real_tokens()
        {
            // Changing a padded token's id must not move any real position's logits (MLM) or the classes (classifier).
            using var model = Pair();
            var d = Data(2);
            var before = model.Logits(d.Ids, Batch, Time, d.Segments, d.Mask);
            var ids = (int[])d.Ids.Clone();
            ids[Batch * Time - 1] = (ids[Batch * Time - 1] + 1) % Reference.Card.Vocab;
            var after = model.Logits(ids, Batch, Time, d.Segments, d.Mask);
            int perToken = before.Length / (Batch * Time);
            for (int i = 0; i < before.Length; i++)
                if (perToken == 0 || !IsPadding(i / perToken))
                    Assert.Equal(before[i], after[i]);
        }

        [Fact]
        public void Adamw_steps_follow_libtorchs_loss_curve()
        {
            using var model = Pair();
            var optimizer = AdamW(Reference);
            for (int step = 1; step <= TrainingSteps; step++)
            {
                var d = Data(100 + step);
                optimizer.zero_grad();
                var expected = Loss(d);
                expected.backward();
                ReferenceStep(Reference, optimizer);

                float loss = model.ForwardBackward(d.Ids, d.Targets, Batch, Time, d.Segments, d.Mask);
                Step(model, step);
                AssertSameLoss(expected.item<float>(), loss, step);
            }
            AssertWeights(Reference, model, TrainingSteps);
        }
    }
}
