using System;
using System.Linq;
using Xunit;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>The flat parameter layout the fused optimizer relies on: which elements decay, which train when the base is frozen, where experts lie.</summary>
    public sealed class ParameterStoreLayoutTests
    {
        [Fact]
        public void Adapters_come_first_so_a_frozen_base_trains_a_prefix_of_matrices()
        {
            using var model = TinyIlgpuLoraGpt.CreateIlgpu(Device);
            var store = model.Parameters;
            var adapters = store.Slots.TakeWhile(s => s.Offset < store.AdapterCount).ToList();
            Assert.NotEmpty(adapters);
            Assert.All(adapters, s => Assert.Matches(@"\.lora_[AB]\.weight$", s.Name));
            Assert.DoesNotContain(store.Slots.Skip(adapters.Count), s => s.Name.Contains(".lora_", StringComparison.Ordinal));
            Assert.True(store.AdapterCount <= store.DecayedCount);

            Assert.Equal(store.Count, store.TrainableCount);
            store.FreezeBase();
            Assert.Equal(store.AdapterCount, store.TrainableCount);
            store.UnfreezeBase();
            Assert.Equal(store.Count, store.TrainableCount);
        }

        [Fact]
        public void Freezing_the_base_of_a_model_without_adapters_is_refused_by_name()
        {
            using var model = TinyIlgpuGpt.CreateIlgpu(Device);
            var e = Assert.Throws<InvalidOperationException>(() => model.Parameters.FreezeBase());
            Assert.Contains("Model 'TinyIlgpuGpt' has no LoRA adapters to train alone", e.Message);
        }

        [Fact]
        public void A_layers_experts_lie_together_under_their_own_names()
        {
            using var model = TinyIlgpuMixtral.CreateIlgpu(Device);
            var store = model.Parameters;
            var w1 = Enumerable.Range(0, 4).Select(e => store.Slot($"model.layers.1.block_sparse_moe.experts.{e}.w1.weight")).ToList();
            for (int e = 1; e < 4; e++) Assert.Equal(w1[e - 1].Offset + w1[e - 1].Length, w1[e].Offset);
            // The layer's block, as the expert kernels read it, is exactly those four.
            Assert.Equal(4 * w1[0].Length, store.Weight("model.layers.{layer}.block_sparse_moe.experts.{expert}.w1.weight", 1).Length);
        }
    }
}
