using System;
using TorchSharp;
using Xunit;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>Loss rejects targets libtorch would turn into an opaque native error, naming the model.</summary>
    public sealed class LossInputTests
    {
        private static readonly torch.Tensor Ids = torch.tensor(new long[] { 1, 2, 3, 4 }).view(1, 4);

        [Fact]
        public void Targets_outside_the_vocabulary_are_rejected_with_the_model_name()
        {
            using var model = TinyGpt.CreateTorchSharp();
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => model.Loss(Ids, torch.tensor(new long[] { 2, 3, 4, 50 }).view(1, 4)));
            Assert.Contains("TinyGpt", error.Message);
            Assert.Contains("[0, 50)", error.Message);
        }

        [Fact]
        public void Targets_with_another_shape_or_dtype_are_rejected()
        {
            using var model = TinyGpt.CreateTorchSharp();
            Assert.Throws<ArgumentException>(() => model.Loss(Ids, torch.tensor(new long[] { 2, 3, 4 }).view(1, 3)));
            Assert.Throws<ArgumentException>(() => model.Loss(Ids, torch.tensor(new int[] { 2, 3, 4, 5 }).view(1, 4)));
        }

        [Fact]
        public void The_ignore_index_is_accepted_and_skipped()
        {
            using var model = TinyGpt.CreateTorchSharp();
            using var all = model.Loss(Ids, torch.tensor(new long[] { 2, 3, 4, 5 }).view(1, 4));
            using var ignored = model.Loss(Ids, torch.tensor(new long[] { 2, 3, 4, -100 }).view(1, 4));
            Assert.True(double.IsFinite(ignored.item<float>()));
            Assert.NotEqual(all.item<float>(), ignored.item<float>());
        }
    }
}
