using System;
using System.IO;
using System.Linq;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using TorchSharp;
using Xunit;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// What every cross-backend test does the same way: the same weights on both backends, every parameter gradient
    /// compared, libtorch's AdamW with the TorchSharp trainer's parameter groups, and the weights compared after training.
    /// Tolerances are float32's: both compute in float32 with different summation orders (SIMT matmul vs MKL/OpenBLAS,
    /// online softmax vs libtorch's), so agreement is to ~1e-5 relative to each tensor's scale.
    /// </summary>
    internal static class CrossBackendChecks
    {
        public const float LearningRate = 3e-3f, Beta1 = 0.9f, Beta2 = 0.95f, Epsilon = 1e-8f, WeightDecay = 0.1f, Clip = 1.0f;

        /// <summary>
        /// Gives <paramref name="model"/> the reference's weights through a safetensors file in <paramref name="folder"/>,
        /// after moving the reference's biases and gains off their initial 0 and 1, so their gradients and uses are checked too.
        /// </summary>
        public static TModel Transfer<TModel>(TransformerModel reference, TModel model, string folder) where TModel : IlgpuTransformerModel
        {
            using (torch.no_grad())
                foreach (var (_, p) in reference.named_parameters())
                    if (p.dim() == 1) p.add_(torch.randn_like(p) * 0.1);
            string path = Path.Combine(folder, "weights.safetensors");
            reference.SaveSafetensors(path);
            model.LoadSafetensors(path);
            return model;
        }

        /// <summary>Every parameter gradient of the ILGPU model equals autograd's (after the reference's backward).</summary>
        public static void AssertGradients(TransformerModel reference, IlgpuTransformerModel model)
        {
            foreach (var (name, p) in reference.named_parameters())
            {
                // Autograd leaves no gradient where nothing flowed (an expert no token was routed to): that is a zero gradient.
                var grad = p.grad ?? torch.zeros_like(p);
                double scale = grad.abs().max().item<float>();
                AssertClose(grad, model.Parameters.GetGradient(name), 1e-5 * Math.Max(scale, 1e-3) + 1e-7, 2e-4, "d " + name);
            }
        }

        /// <summary>
        /// libtorch's AdamW over the reference, weight decay on matrices only, every parameter stepped every step (the
        /// trainer's groups and rule, <see cref="OptimizerRules.GiveEveryParameterAGradient"/>; the ILGPU store does the same).
        /// </summary>
        public static torch.optim.Optimizer AdamW(TransformerModel reference)
        {
            // What trains: a frozen base (model.Lora.Freeze()) leaves only the adapters requiring gradients.
            var parameters = reference.parameters().Where(p => p.requires_grad).ToList();
            OptimizerRules.GiveEveryParameterAGradient(parameters);
            return torch.optim.AdamW(new[]
            {
                new global::TorchSharp.Modules.AdamW.ParamGroup(parameters.Where(p => p.dim() >= 2), LearningRate, Beta1, Beta2, Epsilon, WeightDecay),
                new global::TorchSharp.Modules.AdamW.ParamGroup(parameters.Where(p => p.dim() < 2), LearningRate, Beta1, Beta2, Epsilon, 0.0),
            }, LearningRate, Beta1, Beta2, Epsilon, WeightDecay);
        }

        /// <summary>One reference step after its backward: clip to the global norm, then AdamW.</summary>
        public static void ReferenceStep(TransformerModel reference, torch.optim.Optimizer optimizer)
        {
            torch.nn.utils.clip_grad_norm_(reference.parameters(), Clip);
            optimizer.step();
        }

        /// <summary>The ILGPU model's step with the same hyper-parameters.</summary>
        public static void Step(IlgpuTransformerModel model, int step)
            => model.AdamWStep(step, LearningRate, Beta1, Beta2, Epsilon, WeightDecay, Clip);

        /// <summary>A seeded batch of token ids and next-token targets [batch, time], every fifth target ignored (-100).</summary>
        public static (int[] Ids, int[] Targets) TokenData(int vocab, int batch, int time, int seed)
        {
            var random = new Random(seed);
            var ids = Enumerable.Range(0, batch * time).Select(_ => random.Next(vocab)).ToArray();
            var targets = Enumerable.Range(0, batch * time).Select(i => i % 5 == 4 ? -100 : random.Next(vocab)).ToArray();
            return (ids, targets);
        }

        /// <summary>Ids as libtorch's int64 [batch, time].</summary>
        public static torch.Tensor Long(int[] values, int batch, int time) => torch.tensor(values.Select(v => (long)v).ToArray(), new long[] { batch, time });

        /// <summary>Logits, loss and every parameter gradient of a causal language model equal libtorch's on one seeded batch.</summary>
        public static void AssertSameLogitsLossAndGradients(CausalLanguageModel reference, IlgpuCausalLanguageModel model, int vocab, int batch, int time)
        {
            var (ids, targets) = TokenData(vocab, batch, time, 1);
            var logits = model.Logits(ids, batch, time);
            using (torch.no_grad())
                AssertClose(reference.Forward(Long(ids, batch, time)).Logits, logits, 2e-5, 1e-4, "logits");

            float loss = model.ForwardBackward(ids, targets, batch, time);
            var expected = reference.Loss(Long(ids, batch, time), Long(targets, batch, time));
            expected.backward();
            Assert.Equal(expected.item<float>(), loss, 1e-5f);
            AssertGradients(reference, model);
        }

        /// <summary>
        /// Trains a causal language model on both backends side by side for <paramref name="steps"/> AdamW steps on seeded token
        /// batches (seeds 101, 102, ...), the loss equal at every step, then every weight.
        /// </summary>
        public static void TrainSideBySide(CausalLanguageModel reference, IlgpuCausalLanguageModel model, int steps, int vocab, int batch, int time)
        {
            var optimizer = AdamW(reference);
            for (int step = 1; step <= steps; step++)
            {
                var (ids, targets) = TokenData(vocab, batch, time, 100 + step);
                optimizer.zero_grad();
                var expected = reference.Loss(Long(ids, batch, time), Long(targets, batch, time));
                expected.backward();
                ReferenceStep(reference, optimizer);

                float loss = model.ForwardBackward(ids, targets, batch, time);
                Step(model, step);
                AssertSameLoss(expected.item<float>(), loss, step);
            }
            AssertWeights(reference, model, steps);
        }

        /// <summary>The loss curves drift apart only by float32 rounding; after 20 steps that is still far below 1e-3.</summary>
        public static void AssertSameLoss(float expected, float actual, int step)
            => Assert.True(Math.Abs(expected - actual) < 1e-3, $"step {step}: ILGPU loss {actual}, libtorch {expected}");

        /// <summary>After training, every weight agrees.</summary>
        public static void AssertWeights(TransformerModel reference, IlgpuTransformerModel model, int steps)
        {
            foreach (var (name, p) in reference.named_parameters())
                AssertClose(p.detach(), model.Parameters.Get(name), 2e-4, 2e-3, name + $" after {steps} steps");
        }
    }
}
