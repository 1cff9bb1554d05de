using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Ir;
using static ModelDsl.Generators.Helpers.CodeWriter;

namespace ModelDsl.Generators.Emit.Ilgpu
{
    /// <summary>
    /// Two writers per op kind, forward and backward: the ILGPU backend is this table. Each writes kernel launches
    /// (ModelDsl.Ilgpu.Kernels) over the views the function writer resolves; backward launches accumulate (+=). What
    /// the backend can generate is exactly the kinds with both writers; MDSL0100 reports the rest.
    /// </summary>
    internal static class IlgpuOps
    {
        public const string Runtime = "global::ModelDsl.Ilgpu.";

        public static readonly IReadOnlyDictionary<OpKind, Action<IlgpuFunctionWriter, Op>> Forward = new Dictionary<OpKind, Action<IlgpuFunctionWriter, Op>>
        {
            [OpKind.Embedding] = (w, op) => w.Line($"Kernels.EmbeddingForward({w.Out(op)}, {w.In(op, 0)}, {w.Weight(op, 0)}, {w.Rows(op.Output())}, {w.Width(op.Output())});", op),
            [OpKind.LearnedPositions] = (w, op) =>
            {
                RequireTable(w, op);
                w.Plain($"Copy({w.Out(op)}, {w.In(op, 0)});");
                w.Line($"Kernels.PositionsForward({w.Out(op)}, {w.Weight(op, 0)}, Batch, {TimeOf(w, op.Output())}, {w.Width(op.Output())}, offset: 0);", op);
            },
            [OpKind.SinusoidalPositions] = (w, op) =>
            {
                w.Plain($"Copy({w.Out(op)}, {w.In(op, 0)});");
                w.Line($"Kernels.SinusoidalPositionsForward({w.Out(op)}, Batch, {TimeOf(w, op.Output())}, {w.Width(op.Output())}, offset: 0);", op);
            },
            [OpKind.Rotary] = (w, op) =>
            {
                for (int i = 0; i < 2; i++)
                    w.Line($"Kernels.RotaryForward({w.Out(op, i)}, {w.In(op, i)}, {Rotary(w, op, i)});", op, i);
            },
            [OpKind.RelativePositionBias] = (w, op) => w.Line($"Kernels.RelativePositionBiasForward({w.Out(op)}, {w.Weight(op, 0)}, {RelativeBias(w, op)});", op),
            [OpKind.Scale] = (w, op) =>
            {
                w.Plain($"Copy({w.Out(op)}, {w.In(op, 0)});");
                w.Line($"Kernels.Scale({w.Out(op)}, (float)({((ScaleOp)op).FactorExpression}));", op);
            },
            [OpKind.Add] = (w, op) =>
            {
                RequireSameShape(w, op);
                w.Line($"Kernels.Add({w.Out(op)}, {w.In(op, 0)}, {w.In(op, 1)});", op);
            },
            [OpKind.Norm] = (w, op) =>
            {
                var norm = (NormOp)op;
                string rows = w.Rows(op.Input(0)), width = w.Width(op.Input(0)), epsilon = Epsilon(w, norm);
                w.Line(norm.Norm == Spec.NormKind.LayerNorm
                    ? $"Kernels.LayerNormForward({w.Out(op)}, {w.Statistic(op, "mean")}, {w.Statistic(op, "rstd")}, {w.In(op, 0)}, {w.Weight(op, 0)}, {w.Weight(op, 1)}, {rows}, {width}, {epsilon});"
                    : $"Kernels.RmsNormForward({w.Out(op)}, {w.Statistic(op, "rstd")}, {w.In(op, 0)}, {w.Weight(op, 0)}, {rows}, {width}, {epsilon});", op);
            },
            [OpKind.Linear] = (w, op) =>
            {
                var (rows, inputs, outputs) = LinearSizes(w, op);
                bool transposeW = ((LinearOp)op).Layout == WeightLayout.OutIn;
                if (w.Epilogue(op) is { } activation)
                    w.Line($"Kernels.MatmulActivation({w.Out(op)}, {w.Out(activation)}, {Function(activation.Function)}, {w.In(op, 0)}, {w.Weight(op, 0)}, {w.Weight(op, 1)}, {rows}, {outputs}, {inputs}, transposeB: {Literal(transposeW)});", op);
                else
                    w.Line($"Kernels.Matmul({w.Out(op)}, {w.In(op, 0)}, {w.Weight(op, 0)}, {w.Weight(op, 1)}, {rows}, {outputs}, {inputs}, transposeA: false, transposeB: {Literal(transposeW)}, accumulate: false);", op);
            },
            [OpKind.LowRank] = (w, op) => w.Line($"Kernels.LowRankForward({w.Out(op)}, {w.Statistic(op, "hidden")}, {w.In(op, 0)}, {w.Weight(op, 0)}, {w.Weight(op, 1)}, {LowRank(w, op)});", op),
            [OpKind.Activation] = (w, op) =>
            {
                if (w.IsEpilogue(op)) w.Plain($"// {((ActivationOp)op).Function}: applied by the matmul above, as its epilogue");
                else w.Line($"Kernels.ActivationForward({Function(((ActivationOp)op).Function)}, {w.Out(op)}, {w.In(op, 0)});", op);
            },
            [OpKind.GatedActivation] = (w, op) => w.Line($"Kernels.GatedForward({Function(((GatedActivationOp)op).Function)}, {w.Out(op)}, {w.In(op, 0)}, {w.In(op, 1)});", op),
            [OpKind.Split] = (w, op) => w.Plain($"// {string.Join(", ", op.Outputs.Select(o => w.ValueOf(o).Name))}: column views of {w.ValueOf(op.Input(0)).Name}, read in place"),
            [OpKind.Attention] = (w, op) => w.Line($"Kernels.AttentionForward({w.Out(op)}, {w.Statistic(op, "lse")}, {w.In(op, 0)}, {w.In(op, 1)}, {w.In(op, 2)}, {Mask(w, op)}, {Bias(w, op)}, {AttentionShape(w, op)});", op),
            [OpKind.Dropout] = (w, op) =>
            {
                w.Plain($"if (Training) Kernels.DropoutForward({w.Out(op)}, {w.Statistic(op, "dropout_mask")}, {w.In(op, 0)}, {Rate(w, op)}, DropoutSeed(site: {DropoutSite(w, op)}, {w.LayerOrZero}));");
                w.Line($"else Copy({w.Out(op)}, {w.In(op, 0)});", op);
            },
            [OpKind.Router] = (w, op) =>
            {
                // logits = h W_gate^T (nn.Linear [Experts, Hidden]), then the top-k softmax probabilities and their experts.
                var router = (RouterOp)op;
                w.Line($"Kernels.Matmul({w.Out(op, 2)}, {w.In(op, 0)}, {w.Weight(op, 0)}, default, {w.Rows(op.Input(0))}, {w.Width(op.Outputs[2])}, {w.Width(op.Input(0))}, transposeA: false, transposeB: true, accumulate: false);", op, 2);
                w.Line($"Kernels.RouterForward({w.Out(op, 0)}, {w.Out(op, 1)}, {w.Out(op, 2)}, {Routing(w, op)}, renormalize: {Literal(router.Renormalize)});", op);
            },
            [OpKind.Experts] = (w, op) => w.Line($"Kernels.ExpertsForward({w.Out(op)}, {ExpertsPreActivations(w, op)}, {w.In(op, 0)}, {w.In(op, 1)}, {w.In(op, 2)}, {ExpertWeights(w, op, gradients: false)}, {ExpertsShape(w, op)});", op),
            [OpKind.RouterLoss] = (w, op) => w.Plain($"Kernels.RoutingStatistics({RoutingStatistics(w)}, {w.In(op, 0)}, {w.In(op, 1)}, {Routing(w, op)});"),
            [OpKind.PatchEmbedding] = (w, op) => w.Line($"Kernels.PatchEmbeddingForward({w.Out(op)}, {w.In(op, 0)}, {w.Weight(op, 0)}, {w.Weight(op, 1)}, {Patches(w, op)});", op),
            [OpKind.ClassToken] = (w, op) => w.Line($"Kernels.ClassTokenForward({w.Out(op)}, {w.In(op, 0)}, {w.Weight(op, 0)}, {ClassToken(w, op)});", op),
            [OpKind.SelectToken] = (w, op) => w.Line($"Kernels.SelectTokenForward({w.Out(op)}, {w.In(op, 0)}, {SelectToken(w, op)});", op),
            [OpKind.CrossEntropy] = (w, op) => w.Line($"Kernels.CrossEntropyForward({w.Out(op)}, {w.Statistic(op, "lse")}, {w.In(op, 0)}, {w.In(op, 1)}, {w.Rows(op.Input(0))}, {w.Width(op.Input(0))});", op),
            [OpKind.Call] = (w, op) => w.CallForward((CallOp)op),
            [OpKind.Repeat] = (w, op) => w.RepeatForward((RepeatOp)op),
        };

        public static readonly IReadOnlyDictionary<OpKind, Action<IlgpuFunctionWriter, Op>> Backward = new Dictionary<OpKind, Action<IlgpuFunctionWriter, Op>>
        {
            [OpKind.Embedding] = (w, op) => w.ParameterGradientLine($"Kernels.EmbeddingBackward({w.WeightGradient(op, 0)}, {w.DOut(op)}, {w.In(op, 0)}, {w.Rows(op.Output())}, {w.Width(op.Output())}, {w.Parameter(op, 0).Shape[0].Expression});", op, 0),
            [OpKind.LearnedPositions] = (w, op) =>
            {
                if (w.DIn(op, 0) is { } dInput) w.GradientLine($"Kernels.Accumulate({dInput}, {w.DOut(op)});", op.Input(0));
                w.ParameterGradientLine($"Kernels.PositionsBackward({w.WeightGradient(op, 0)}, {w.DOut(op)}, Batch, {TimeOf(w, op.Output())}, {w.Width(op.Output())}, offset: 0);", op, 0);
            },
            [OpKind.SinusoidalPositions] = (w, op) =>
            {
                if (w.DIn(op, 0) is { } dInput) w.GradientLine($"Kernels.Accumulate({dInput}, {w.DOut(op)});", op.Input(0));
            },
            [OpKind.Rotary] = (w, op) =>
            {
                for (int i = 1; i >= 0; i--)
                    if (w.DIn(op, i) is { } dInput) w.GradientLine($"Kernels.RotaryBackward({dInput}, {w.DOut(op, i)}, {Rotary(w, op, i)});", op.Input(i));
            },
            // The bias depends on positions only: the input (whose length it takes) gets no gradient.
            [OpKind.RelativePositionBias] = (w, op) => w.ParameterGradientLine($"Kernels.RelativePositionBiasBackward({w.WeightGradient(op, 0)}, {w.DOut(op)}, {RelativeBias(w, op)});", op, 0),
            [OpKind.Scale] = (w, op) => w.GradientLine($"Kernels.AccumulateScaled({Gradient(w, op, 0)}, {w.DOut(op)}, (float)({((ScaleOp)op).FactorExpression}));", op.Input(0)),
            [OpKind.Add] = (w, op) =>
            {
                for (int i = 0; i < 2; i++)
                    if (w.DIn(op, i) is { } dInput) w.GradientLine($"Kernels.Accumulate({dInput}, {w.DOut(op)});", op.Input(i));
            },
            [OpKind.Norm] = (w, op) =>
            {
                var norm = (NormOp)op;
                string rows = w.Rows(op.Input(0)), width = w.Width(op.Input(0));
                w.GradientLine(norm.Norm == Spec.NormKind.LayerNorm
                    ? $"Kernels.LayerNormBackward({Gradient(w, op, 0)}, {w.WeightGradient(op, 0)}, {w.WeightGradient(op, 1)}, {w.DOut(op)}, {w.In(op, 0)}, {w.Weight(op, 0)}, {w.Statistic(op, "mean")}, {w.Statistic(op, "rstd")}, {rows}, {width});"
                    : $"Kernels.RmsNormBackward({Gradient(w, op, 0)}, {w.WeightGradient(op, 0)}, {w.DOut(op)}, {w.In(op, 0)}, {w.Weight(op, 0)}, {w.Statistic(op, "rstd")}, {rows}, {width});", op.Input(0));
            },
            [OpKind.Linear] = (w, op) =>
            {
                // y = x W: dx += dy W^T, dW += x^T dy (W stored [in, out]); y = x W^T: dx += dy W, dW += dy^T x (W stored [out, in]).
                var (rows, inputs, outputs) = LinearSizes(w, op);
                bool inOut = ((LinearOp)op).Layout == WeightLayout.InOut;
                if (w.DIn(op, 0) is { } dInput)
                    w.GradientLine($"Kernels.Matmul({dInput}, {w.DOut(op)}, {w.Weight(op, 0)}, default, {rows}, {inputs}, {outputs}, transposeA: false, transposeB: {Literal(inOut)}, accumulate: true);", op.Input(0));
                w.ParameterGradientLine(inOut
                    ? $"Kernels.Matmul({w.WeightGradient(op, 0)}, {w.In(op, 0)}, {w.DOut(op)}, default, {inputs}, {outputs}, {rows}, transposeA: true, transposeB: false, accumulate: true);"
                    : $"Kernels.Matmul({w.WeightGradient(op, 0)}, {w.DOut(op)}, {w.In(op, 0)}, default, {outputs}, {inputs}, {rows}, transposeA: true, transposeB: false, accumulate: true);", op, 0);
                if (op.HasParameter(1))
                    w.ParameterGradientLine($"Kernels.BiasBackward({w.WeightGradient(op, 1)}, {w.DOut(op)}, {rows}, {outputs});", op, 1);
            },
            [OpKind.LowRank] = (w, op) => w.GradientLine($"Kernels.LowRankBackward({Gradient(w, op, 0)}, {w.WeightGradient(op, 0)}, {w.WeightGradient(op, 1)}, {w.DOut(op)}, " +
                $"{w.In(op, 0)}, {w.Statistic(op, "hidden")}, {w.Weight(op, 0)}, {w.Weight(op, 1)}, {LowRank(w, op)});", op.Input(0)),
            // tanh's backward reads its output, the others their input: what the IR's schedule saves for each.
            [OpKind.Activation] = (w, op) => w.GradientLine(((ActivationOp)op).Function == ActivationKind.Tanh
                ? $"Kernels.TanhBackward({Gradient(w, op, 0)}, {w.DOut(op)}, {w.Out(op)});"
                : $"Kernels.ActivationBackward({Function(((ActivationOp)op).Function)}, {Gradient(w, op, 0)}, {w.DOut(op)}, {w.In(op, 0)});", op.Input(0)),
            [OpKind.GatedActivation] = (w, op) => w.GradientLine($"Kernels.GatedBackward({Function(((GatedActivationOp)op).Function)}, {Gradient(w, op, 0)}, {Gradient(w, op, 1)}, {w.DOut(op)}, {w.In(op, 0)}, {w.In(op, 1)});", op.Input(0)),
            [OpKind.Split] = (w, op) => w.Plain($"// {string.Join(", ", op.Outputs.Select(o => "d" + w.ValueOf(o).Name))}: column views of d{w.ValueOf(op.Input(0)).Name}"),
            [OpKind.Attention] = (w, op) => w.GradientLine($"Kernels.AttentionBackward({Gradient(w, op, 0)}, {Gradient(w, op, 1)}, {Gradient(w, op, 2)}, {BiasGradient(w, op)}, {w.DOut(op)}, {w.Out(op)}, {w.Statistic(op, "lse")}, {w.In(op, 0)}, {w.In(op, 1)}, {w.In(op, 2)}, {Mask(w, op)}, {Bias(w, op)}, {AttentionShape(w, op)});", op.Input(0)),
            [OpKind.Dropout] = (w, op) => w.GradientLine($"Kernels.DropoutBackward({Gradient(w, op, 0)}, {w.DOut(op)}, {w.Statistic(op, "dropout_mask")}, {Rate(w, op)});", op.Input(0)),
            [OpKind.Router] = (w, op) =>
            {
                // Through the top-k weights to the logits, then the gate's linear backward (W stored [out, in]).
                var router = (RouterOp)op;
                string rows = w.Rows(op.Input(0)), experts = w.Width(op.Outputs[2]), hidden = w.Width(op.Input(0)), dLogits = w.DOut(op, 2);
                w.GradientLine($"Kernels.RouterBackward({dLogits}, {w.DOut(op, 0)}, {w.Out(op, 2)}, {w.Out(op, 1)}, {Routing(w, op)}, renormalize: {Literal(router.Renormalize)});", op.Outputs[2]);
                w.GradientLine($"Kernels.Matmul({Gradient(w, op, 0)}, {dLogits}, {w.Weight(op, 0)}, default, {rows}, {hidden}, {experts}, transposeA: false, transposeB: false, accumulate: true);", op.Input(0));
                w.ParameterGradientLine($"Kernels.Matmul({w.WeightGradient(op, 0)}, {dLogits}, {w.In(op, 0)}, default, {experts}, {hidden}, {rows}, transposeA: true, transposeB: false, accumulate: true);", op, 0);
            },
            [OpKind.Experts] = (w, op) => w.GradientLine($"Kernels.ExpertsBackward({Gradient(w, op, 0)}, {Gradient(w, op, 1)}, {ExpertWeights(w, op, gradients: true)}, {w.DOut(op)}, " +
                $"{ExpertsPreActivations(w, op)}, {w.In(op, 0)}, {w.In(op, 1)}, {w.In(op, 2)}, {ExpertWeights(w, op, gradients: false)}, {ExpertsShape(w, op)});", op.Input(0)),
            // The statistics are complete (every layer's forward ran), so each layer's logits get their share of the
            // loss's gradient; the loss is added to the task loss unscaled (its gradient is 1).
            [OpKind.RouterLoss] = (w, op) => w.GradientLine($"Kernels.RoutingLossBackward({Gradient(w, op, 0)}, {w.In(op, 0)}, {RoutingStatistics(w)}, {w.Rows(op.Input(0))}, RoutedTokens, " +
                $"{Experts(w, op)}, TopK, {RouterLossWeights(w.Graph, (RouterLossOp)op)}, scale: 1f);", op.Input(0)),
            [OpKind.PatchEmbedding] = (w, op) => w.ParameterGradientLine($"Kernels.PatchEmbeddingBackward({w.WeightGradient(op, 0)}, {w.WeightGradient(op, 1)}, {w.DOut(op)}, {w.In(op, 0)}, {Patches(w, op)});", op, 0),
            [OpKind.ClassToken] = (w, op) => w.GradientLine($"Kernels.ClassTokenBackward({Gradient(w, op, 0)}, {w.WeightGradient(op, 0)}, {w.DOut(op)}, {ClassToken(w, op)});", op.Input(0)),
            [OpKind.SelectToken] = (w, op) => w.GradientLine($"Kernels.SelectTokenBackward({Gradient(w, op, 0)}, {w.DOut(op)}, {SelectToken(w, op)});", op.Input(0)),
            [OpKind.CrossEntropy] = (w, op) => w.GradientLine($"Kernels.CrossEntropyBackward({Gradient(w, op, 0)}, {w.In(op, 0)}, {w.Statistic(op, "lse")}, {w.In(op, 1)}, {w.Rows(op.Input(0))}, {w.Width(op.Input(0))}, LossScale);", op.Input(0)),
            [OpKind.Call] = (w, op) => w.CallBackward((CallOp)op),
            [OpKind.Repeat] = (w, op) => w.RepeatBackward((RepeatOp)op),
        };

        /// <summary>The op kinds this backend generates: those with a forward and a backward writer.</summary>
        public static IReadOnlyCollection<OpKind> Supported => Forward.Keys.Where(Backward.ContainsKey).ToList();

        /// <summary>The tasks whose runtime base class this backend has, and that class.</summary>
        public static readonly IReadOnlyDictionary<ModelTask, string> Tasks = new Dictionary<ModelTask, string>
        {
            [ModelTask.CausalLanguageModel] = "IlgpuCausalLanguageModel",
            [ModelTask.MaskedLanguageModel] = "IlgpuMaskedLanguageModel",
            [ModelTask.SequenceClassification] = "IlgpuSequenceClassificationModel",
            [ModelTask.ImageClassification] = "IlgpuImageClassificationModel",
            [ModelTask.SequenceToSequence] = "IlgpuSequenceToSequenceModel",
        };

        private static string Function(ActivationKind activation) => Runtime + "KernelActivation." + activation;

        /// <summary>A LoRA update's sizes: rows, the projection's input and output widths, the rank (lora_A's rows) and alpha / rank.</summary>
        private static string LowRank(IlgpuFunctionWriter w, Op op)
        {
            var scale = ((LowRankOp)op).Scale;
            var lora = w.Graph.Spec.Lora!;
            string factor = scale == lora.Alpha / lora.Rank ? "(float)LoraScale" : Literal(scale) + "f";
            return $"{w.Rows(op.Input(0))}, {w.Width(op.Input(0))}, {w.Width(op.Output())}, {w.Parameter(op, 0).Shape[0].Expression}, {factor}";
        }

        // ---------------------------------------------------------------- mixture of experts

        /// <summary>A router's or a router loss's sizes: tokens (the rows of its first input), experts, TopK.</summary>
        private static string Routing(IlgpuFunctionWriter w, Op op) => $"{w.Rows(op.Input(0))}, {Experts(w, op)}, TopK";

        /// <summary>The experts per layer: the width of the router logits (the router's third output, the router loss's first input).</summary>
        private static string Experts(IlgpuFunctionWriter w, Op op)
            => w.Width(op is RouterOp ? op.Outputs[2] : op.Input(0));

        private static string RoutingStatistics(IlgpuFunctionWriter w)
            => (w.Plan.RoutingStatistics ?? throw new InvalidOperationException("A router loss without routing statistics.")).Field + "[0]";

        /// <summary>The load-balancing and z-loss weights: the declaration's constants when they are the spec's.</summary>
        public static string RouterLossWeights(ModelGraph graph, RouterLossOp op)
        {
            var moe = graph.Spec.Experts!;
            string weight = op.Weight == moe.AuxLossWeight ? "(float)AuxLossWeight" : Literal(op.Weight) + "f";
            string zWeight = op.ZWeight == moe.ZLossWeight ? "(float)ZLossWeight" : Literal(op.ZWeight) + "f";
            return $"{weight}, {zWeight}";
        }

        /// <summary>The views of a layer's expert weights (or their gradients): up, gate (or default when not gated), down; each the layer's [Experts, ...] block.</summary>
        private static string ExpertWeights(IlgpuFunctionWriter w, Op op, bool gradients)
        {
            string Access(int i) => gradients ? w.WeightGradient(op, i) : w.Weight(op, i);
            return ((ExpertsOp)op).Gated ? $"{Access(0)}, {Access(1)}, {Access(2)}" : $"{Access(0)}, default, {Access(1)}";
        }

        /// <summary>The pre-activations the experts keep for their backward: up's and gate's (gated), or the one hidden (default for the gate).</summary>
        private static string ExpertsPreActivations(IlgpuFunctionWriter w, Op op)
            => ((ExpertsOp)op).Gated ? $"{w.Statistic(op, "expert_up")}, {w.Statistic(op, "expert_gate")}" : $"{w.Statistic(op, "expert_hidden")}, default";

        /// <summary>An experts call's sizes; InOut when the experts are GPT-2 Conv1D modules (weights stored [in, out]).</summary>
        private static string ExpertsShape(IlgpuFunctionWriter w, Op op)
        {
            var experts = (ExpertsOp)op;
            var up = w.Parameter(op, 0);
            bool inOut = up.Module == ModuleKind.Conv1D;
            string inner = (inOut ? up.Shape[1] : up.Shape[0]).Expression;
            return $"new {Runtime}ExpertsShape({w.Rows(op.Input(0))}, {w.Width(op.Input(0))}, {inner}, Experts, {w.Width(op.Input(1))}, {Function(experts.Function)}, Gated: {Literal(experts.Gated)}, InOut: {Literal(inOut)})";
        }

        private static string Gradient(IlgpuFunctionWriter w, Op op, int input)
            => w.DIn(op, input) ?? throw new NotSupportedException($"The ILGPU backend needs the gradient of {w.ValueOf(op.Inputs[input])}.");

        private static string Rate(IlgpuFunctionWriter w, Op op)
        {
            double rate = op is AttentionOp attention ? attention.Dropout : ((DropoutOp)op).Rate;
            return rate == w.Graph.Spec.DropoutRate ? "(float)DropoutRate" : Literal(rate) + "f";
        }

        /// <summary>Which dropout site of the graph this is (a dropout op, or an attention's probabilities): with the layer, it keeps every site's mask distinct.</summary>
        private static int DropoutSite(IlgpuFunctionWriter w, Op op)
            => w.Graph.AllOps().Select(p => p.Op).Where(o => o is DropoutOp or AttentionOp { Dropout: > 0 }).ToList().IndexOf(op);

        private static string Epsilon(IlgpuFunctionWriter w, NormOp norm)
            => norm.Epsilon == w.Graph.Spec.Norm.Epsilon ? "(float)Epsilon" : Literal(norm.Epsilon) + "f";

        private static (string Rows, string Inputs, string Outputs) LinearSizes(IlgpuFunctionWriter w, Op op)
            => (w.Rows(op.Input(0)), w.Width(op.Input(0)), w.Width(op.Output()));

        private static void RequireTable(IlgpuFunctionWriter w, Op op)
        {
            var shape = w.Parameter(op, 0).Shape;
            if (shape.Take(shape.Count - 2).Any(d => d.Size != 1))
                throw new NotSupportedException("The ILGPU backend adds learned positions from a [positions, Hidden] table only (leading dimensions of 1).");
        }

        private static void RequireSameShape(IlgpuFunctionWriter w, Op op)
        {
            if (!w.ValueOf(op.Input(0)).Shape.Equals(w.ValueOf(op.Input(1)).Shape))
                throw new NotSupportedException("The ILGPU backend adds tensors of one shape only (no broadcasting).");
        }

        /// <summary>
        /// A rotary launch's sizes for input <paramref name="i"/> (queries or keys): rows, time, heads (the width's factor
        /// before HeadDim, which the graph builder checked), the input's row stride (it may be a column view of a fused
        /// projection), the base and position 0 (training runs whole sequences).
        /// </summary>
        private static string Rotary(IlgpuFunctionWriter w, Op op, int i)
        {
            var rotary = (RotaryOp)op;
            var width = w.ValueOf(op.Input(i)).Shape[w.ValueOf(op.Input(i)).Shape.Count - 1];
            string heads = width.Symbol == "Hidden" ? "Heads"
                : width.Symbol.EndsWith("*HeadDim", StringComparison.Ordinal) ? width.Symbol.Substring(0, width.Symbol.Length - "*HeadDim".Length)
                : $"{width.Expression} / HeadDim";
            string @base = rotary.Base == w.Graph.Spec.Positions.RotaryBase ? "RotaryBase" : Literal(rotary.Base);
            return $"{w.Rows(op.Input(i))}, {TimeOf(w, op.Input(i))}, {heads}, HeadDim, {w.RowStride(op.Input(i))}, {@base}, offset: 0";
        }

        /// <summary>The time axis of a [Batch, time, ...] value: the run-time Time, or a constant (a vision encoder's Patches + 1).</summary>
        private static string TimeOf(IlgpuFunctionWriter w, int value) => IlgpuPlan.Size(w.ValueOf(value).Shape[1]);

        /// <summary>A patch embedding's sizes: the batch, the image's channels and side, the patch side and the width.</summary>
        private static string Patches(IlgpuFunctionWriter w, Op op)
        {
            var pixels = w.ValueOf(op.Input(0)).Shape;
            return $"Batch, {pixels[1].Expression}, {pixels[2].Expression}, {w.Parameter(op, 0).Shape[2].Expression}, {w.Width(op.Output())}";
        }

        /// <summary>A class token's sizes: the batch, the positions before it and the width.</summary>
        private static string ClassToken(IlgpuFunctionWriter w, Op op) => $"Batch, {TimeOf(w, op.Input(0))}, {w.Width(op.Output())}";

        /// <summary>A relative position bias's sizes: heads, query and key lengths (the bias is [Heads, time, keys]), direction, buckets, max distance.</summary>
        private static string RelativeBias(IlgpuFunctionWriter w, Op op)
        {
            var bias = (RelativePositionBiasOp)op;
            var shape = w.ValueOf(op.Output()).Shape;
            string buckets = bias.Buckets == w.Graph.Spec.Positions.RelativeBuckets ? "Buckets" : Literal(bias.Buckets);
            string distance = bias.MaxDistance == w.Graph.Spec.Positions.RelativeMaxDistance ? "MaxDistance" : Literal(bias.MaxDistance);
            return $"{shape[0].Expression}, {IlgpuPlan.Size(shape[1])}, {IlgpuPlan.Size(shape[2])}, bidirectional: {Literal(bias.Bidirectional)}, {buckets}, {distance}";
        }

        /// <summary>A token selection's sizes: [Batch, time, width] in, the token's index.</summary>
        private static string SelectToken(IlgpuFunctionWriter w, Op op)
            => $"Batch, {TimeOf(w, op.Input(0))}, {w.Width(op.Input(0))}, index: {((SelectTokenOp)op).Index}";

        private static string Mask(IlgpuFunctionWriter w, Op op)
            => ((AttentionOp)op).PaddingMask ? w.In(op, 3) : "default";

        private static string Bias(IlgpuFunctionWriter w, Op op)
        {
            var a = (AttentionOp)op;
            return a.PositionBias ? w.In(op, a.PaddingMask ? 4 : 3) : "default";
        }

        private static string BiasGradient(IlgpuFunctionWriter w, Op op)
        {
            var a = (AttentionOp)op;
            return a.PositionBias ? Gradient(w, op, a.PaddingMask ? 4 : 3) : "default";
        }

        /// <summary>The attention's sizes, masks and strides (q, k and v may be column views of one fused buffer).</summary>
        private static string AttentionShape(IlgpuFunctionWriter w, Op op)
        {
            var a = (AttentionOp)op;
            string scale = a.Scaled ? "1f / global::System.MathF.Sqrt(HeadDim)" : "1f";
            string kvHeads = a.KvHeads == a.Heads ? "Heads" : "KvHeads";
            // Dropout on the probabilities in training only; forward and backward draw the step's mask from one seed.
            string dropout = a.Dropout > 0 ? $", Dropout: Training ? {Rate(w, op)} : 0f, DropoutSeed: DropoutSeed(site: {DropoutSite(w, op)}, {w.LayerOrZero})" : "";
            return $"new {Runtime}AttentionShape(Batch, Heads, {kvHeads}, HeadDim, {TimeOf(w, op.Input(0))}, KeyTime: {TimeOf(w, op.Input(1))}, QueryOffset: 0, Causal: {Literal(a.Mask == AttentionMask.Causal)}, " +
                   $"Window: {(a.Window is int window ? Literal(window) : "0")}, Scale: {scale}, " +
                   $"QueryStride: {w.RowStride(op.Input(0))}, KeyStride: {w.RowStride(op.Input(1))}, ValueStride: {w.RowStride(op.Input(2))}{dropout})";
        }
    }
}
