using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using ModelDsl.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>
    /// Trains a model on its task's batches with AdamW: weight decay on matrices only
    /// (parameters with two or more dimensions; biases, norm gains and other vectors are not decayed), linear
    /// warm-up and cosine decay, global gradient-norm clipping, periodic validation on fixed batches.
    /// <para>
    /// Parameters are de-duplicated by storage before the optimizer is built: TorchSharp lists a tied matrix
    /// (lm_head = wte) under both names, and AdamW would otherwise update it twice per step.
    /// Each step runs in its own dispose scope, so the native tensors of a step are freed when it ends.
    /// </para>
    /// </summary>
    public class ModelTrainer<TBatch> : IDisposable
    {
        private readonly TaskModel<TBatch> model;
        private readonly List<(string Name, Parameter Parameter)> parameters;
        private readonly Parameter[] parameterArray;
        private readonly AdamW optimizer;
        /// <summary>The parameters in the optimizer's state order (decayed group first), by name.</summary>
        private readonly List<(string Name, Parameter Parameter)> optimizerOrder = new();
        private TrainingCheckpoint.Progress? resumed;
        private bool disposed;

        /// <summary>Prepares training of <paramref name="model"/> (builds the optimizer; trains nothing yet).</summary>
        /// <exception cref="ArgumentOutOfRangeException">An option is invalid.</exception>
        /// <exception cref="InvalidOperationException">The model has no trainable parameters, or two parameters overlap without being the same.</exception>
        public ModelTrainer(TaskModel<TBatch> model, TrainingOptions options)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentNullException.ThrowIfNull(options);
            options.Validate();
            this.model = model;
            Options = options;
            parameters = UniqueParameters(model);
            if (parameters.Count == 0)
                throw new InvalidOperationException($"Model '{model.Card.Name}' has no trainable parameters.");
            parameterArray = new Parameter[parameters.Count];
            var decay = new List<Parameter>();
            var noDecay = new List<Parameter>();
            for (int i = 0; i < parameters.Count; i++)
            {
                var p = parameters[i].Parameter;
                parameterArray[i] = p;
                ParameterCount += p.numel();
                if (p.dim() >= 2) { decay.Add(p); DecayedParameterCount += p.numel(); }
                else noDecay.Add(p);
            }
            optimizerOrder.AddRange(parameters.Where(p => p.Parameter.dim() >= 2));
            optimizerOrder.AddRange(parameters.Where(p => p.Parameter.dim() < 2));
            var groups = new List<AdamW.ParamGroup>();
            if (decay.Count > 0)
                groups.Add(new AdamW.ParamGroup(decay, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay));
            if (noDecay.Count > 0)
                groups.Add(new AdamW.ParamGroup(noDecay, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, 0.0));
            optimizer = new AdamW(groups, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
            OptimizerRules.GiveEveryParameterAGradient(parameterArray);
        }

        /// <summary>The options this trainer was built with.</summary>
        public TrainingOptions Options { get; }

        /// <summary>Where training checkpoints (and the best validation weights) go; null: none are written.</summary>
        public TrainingCheckpoints? Checkpoints { get; init; }

        /// <summary>
        /// Continues from a training checkpoint that a trainer with the same options wrote for the same model: restores
        /// the weights, AdamW's moments and step counts, libtorch's generator, the batch stream's position and the
        /// curves so far, so the next <see cref="Train"/> runs the remaining steps exactly as the interrupted run would
        /// have (bit for bit on the same thread count). All or nothing: on any mismatch nothing changes.
        /// </summary>
        /// <exception cref="ModelDsl.Checkpoints.SafetensorsException">The file is not a training checkpoint of this model and these options.</exception>
        public void Resume(string path)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var (tensors, progress) = TrainingCheckpoint.Load(path);
            try
            {
                var problems = new List<string>();
                if (progress.Model != model.Card.Name) problems.Add($"it was written for model '{progress.Model}'");
                if (progress.Options != TrainingCheckpoint.Fingerprint(Options))
                    problems.Add($"its batch size, sequence length, seed or schedule ({progress.Options}) differ from these options ({TrainingCheckpoint.Fingerprint(Options)})");
                if (progress.StepsDone > Options.Steps) problems.Add($"it is past the {Options.Steps} steps of these options ({progress.StepsDone} done)");
                foreach (var (name, p) in optimizerOrder)
                    foreach (var key in new[] { "model." + name, "adamw.exp_avg." + name, "adamw.exp_avg_sq." + name })
                        if (!tensors.TryGetValue(key, out var t) || !t.shape.SequenceEqual(p.shape))
                            problems.Add($"tensor '{key}' is missing or not shaped [{string.Join(", ", p.shape)}]");
                if (progress.AdamSteps.Length != optimizerOrder.Count || !tensors.ContainsKey("rng.torch"))
                    problems.Add("its optimizer state or generator state is incomplete");
                if (problems.Count > 0)
                    throw new ModelDsl.Checkpoints.SafetensorsException(path, null,
                        $"Model '{model.Card.Name}': cannot resume from '{path}': {string.Join("; ", problems)}.");

                var states = optimizer.state_dict().State;
                using (torch.no_grad())
                {
                    for (int i = 0; i < optimizerOrder.Count; i++)
                    {
                        var (name, p) = optimizerOrder[i];
                        var state = (AdamW.State)states[i];
                        p.copy_(tensors["model." + name]);
                        state.exp_avg.copy_(tensors["adamw.exp_avg." + name]);
                        state.exp_avg_sq.copy_(tensors["adamw.exp_avg_sq." + name]);
                        state.step = progress.AdamSteps[i];
                    }
                }
                torch.random.set_rng_state(tensors["rng.torch"]);
                resumed = progress;
            }
            finally
            {
                foreach (var t in tensors.Values) t.Dispose();
            }
        }

        /// <summary>The parameters the optimizer updates, each once (the first name of a shared tensor is kept).</summary>
        public IReadOnlyList<(string Name, Parameter Parameter)> OptimizedParameters => parameters;

        /// <summary>Trainable scalars, counting shared tensors once.</summary>
        public long ParameterCount { get; }

        /// <summary>Scalars in parameters that get weight decay (two or more dimensions).</summary>
        public long DecayedParameterCount { get; }

        /// <summary>
        /// The trainable parameters of <paramref name="module"/>, each tensor once, in <c>named_parameters()</c>
        /// order with the first name kept. Two entries are the same parameter when they are the same native tensor
        /// (TorchSharp lists <c>lm_head.weight = wte.weight</c> under both names) or when their data start at the
        /// same address with the same element count and dtype (two wrappers of one storage).
        /// </summary>
        /// <exception cref="InvalidOperationException">Two parameters start at the same address with different sizes (overlapping views).</exception>
        public static List<(string Name, Parameter Parameter)> UniqueParameters(nn.Module module)
        {
            ArgumentNullException.ThrowIfNull(module);
            var byHandle = new HashSet<IntPtr>();
            var byData = new Dictionary<IntPtr, (string Name, Parameter Parameter)>();
            var result = new List<(string, Parameter)>();
            foreach (var (name, p) in module.named_parameters())
            {
                if (!p.requires_grad || !byHandle.Add(p.Handle)) continue;
                IntPtr data = p.numel() == 0 ? IntPtr.Zero : TensorData.Pointer(p);
                if (data != IntPtr.Zero)
                {
                    if (byData.TryGetValue(data, out var first))
                    {
                        if (first.Parameter.numel() != p.numel() || first.Parameter.dtype != p.dtype)
                            throw new InvalidOperationException(
                                $"Parameters '{first.Name}' and '{name}' share storage but differ in size or type; overlapping parameters cannot be optimised.");
                        continue;
                    }
                    byData.Add(data, (name, p));
                }
                result.Add((name, p));
            }
            return result;
        }

        /// <summary>
        /// Runs <see cref="TrainingOptions.Steps"/> optimizer steps on batches from <paramref name="data"/>'s train
        /// split and evaluates on its validation split. The model is left in training mode.
        /// </summary>
        /// <exception cref="TrainingDivergedException">The loss or the gradient norm became NaN or infinite; names the step.</exception>
        /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was signalled (checked between steps).</exception>
        public TrainingReport Train(ITaskData<TBatch> data, ITrainingObserver? observer = null, CancellationToken cancellation = default)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            ArgumentNullException.ThrowIfNull(data);
            var o = Options;
            if (o.Threads is int threads) torch.set_num_threads(threads);
            var from = resumed;
            if (from is null) torch.random.manual_seed(unchecked((long)o.Seed)); // a resumed run keeps the restored generator
            int startStep = from?.StepsDone ?? 0;

            var device = parameterArray[0].device;
            var train = data.Stream(DataSplit.Train, o, o.Seed, device);
            if (from is not null)
            {
                if (train is not IResumableStream resumable)
                    throw new InvalidOperationException($"Training of '{model.Card.Name}' cannot resume: its data stream cannot restore its position.");
                resumable.RestoreState(from.Stream);
            }
            bool evaluate = o.EvalEvery > 0 && data.CanStream(DataSplit.Validation, o);
            observer?.OnStart(new TrainingStart(model.Card.Name, o, ParameterCount, DecayedParameterCount,
                data.Items(DataSplit.Train), data.Items(DataSplit.Validation), data.ItemName));

            var losses = new List<double>(from?.Losses ?? Array.Empty<double>());
            var rates = new List<double>(from?.Rates ?? Array.Empty<double>());
            var norms = new List<double>(from?.Norms ?? Array.Empty<double>());
            var evaluations = from is null ? new List<EvaluationPoint>()
                : from.EvaluationSteps.Zip(from.EvaluationLosses, (s, l) => new EvaluationPoint(s, l)).ToList();
            double best = from?.BestValidation ?? double.PositiveInfinity;
            var smoother = new LossSmoother();
            foreach (var l in losses) smoother.Add(l);
            var total = Stopwatch.StartNew();
            var training = new Stopwatch();
            var recent = new Queue<(int Step, TimeSpan At)>(); // a sliding window for the current speed
            long itemsPerStep = train.ItemsPerBatch;

            model.train();
            if (evaluate && from is null) best = Math.Min(best, Evaluate(data, 0, evaluations, observer));

            for (int step = startStep; step < o.Steps; step++)
            {
                cancellation.ThrowIfCancellationRequested();
                double lr = o.LearningRateAt(step);
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;

                training.Start();
                double loss, norm;
                using (var scope = torch.NewDisposeScope())
                {
                    var batch = train.Next();
                    optimizer.zero_grad();
                    var lossTensor = model.Loss(batch);
                    loss = lossTensor.item<float>();
                    if (!double.IsFinite(loss))
                        throw new TrainingDivergedException(step,
                            $"Training of '{model.Card.Name}' diverged: the loss is {loss} at step {step} (learning rate {lr:G3}). " +
                            "Lower the learning rate, lengthen the warm-up or check the data.");
                    lossTensor.backward();
                    norm = o.GradClipNorm > 0
                        ? nn.utils.clip_grad_norm_(parameterArray, o.GradClipNorm)
                        : GradNorm(parameterArray);
                    if (!double.IsFinite(norm))
                        throw new TrainingDivergedException(step,
                            $"Training of '{model.Card.Name}' diverged: the gradient norm is {norm} at step {step} (loss {loss:F4}, learning rate {lr:G3}).");
                    optimizer.step();
                }
                training.Stop();
                if (o.TrimNativeMemoryEvery > 0 && (step + 1) % o.TrimNativeMemoryEvery == 0) NativeHeap.Trim();

                losses.Add(loss);
                rates.Add(lr);
                norms.Add(norm);
                double smoothed = smoother.Add(loss);
                recent.Enqueue((step, training.Elapsed));
                while (recent.Count > 20) recent.Dequeue();
                var (firstStep, firstAt) = recent.Peek();
                double secondsPerStep = step > firstStep
                    ? (training.Elapsed - firstAt).TotalSeconds / (step - firstStep)
                    : training.Elapsed.TotalSeconds / (step - startStep + 1);
                observer?.OnStep(new TrainingProgress(step, o.Steps, loss, smoothed, lr, norm,
                    secondsPerStep > 0 ? itemsPerStep / secondsPerStep : 0, total.Elapsed,
                    TimeSpan.FromSeconds(secondsPerStep * (o.Steps - step - 1))));

                if (evaluate && ((step + 1) % o.EvalEvery == 0 || step == o.Steps - 1))
                {
                    double validation = Evaluate(data, step + 1, evaluations, observer);
                    if (validation < best && Checkpoints?.BestPath is { } bestPath) model.SaveSafetensors(bestPath);
                    best = Math.Min(best, validation);
                }
                if (Checkpoints is { } c && ((step + 1) % c.Every == 0 || step == o.Steps - 1))
                    SaveCheckpoint(c.Path, step + 1, train, losses, rates, norms, evaluations, best);
            }
            resumed = null;

            total.Stop();
            long itemsSeen = itemsPerStep * (o.Steps - startStep);
            var report = new TrainingReport(model.Card.Name, o, losses, rates, norms, evaluations, itemsSeen,
                total.Elapsed, training.Elapsed, itemsSeen / Math.Max(training.Elapsed.TotalSeconds, 1e-9), data.ItemName);
            observer?.OnEnd(report);
            return report;
        }

        /// <summary>
        /// Mean loss over <paramref name="batches"/> seeded batches of <paramref name="split"/>, in eval mode and
        /// without gradients; the model's training mode is restored afterwards.
        /// </summary>
        public double EvaluateLoss(ITaskData<TBatch> data, DataSplit split, int batches, ulong seed)
        {
            ArgumentNullException.ThrowIfNull(data);
            if (batches <= 0) throw new ArgumentOutOfRangeException(nameof(batches), batches, "Evaluate at least one batch.");
            var stream = data.Stream(split, Options, seed, parameterArray[0].device);
            bool wasTraining = model.training;
            model.eval();
            try
            {
                using var noGrad = torch.no_grad();
                double sum = 0;
                for (int i = 0; i < batches; i++)
                {
                    using var scope = torch.NewDisposeScope();
                    sum += model.Loss(stream.Next()).item<float>();
                }
                return sum / batches;
            }
            finally
            {
                model.train(wasTraining);
            }
        }

        /// <summary>Frees the optimizer state (the model is the caller's).</summary>
        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            optimizer.Dispose();
        }

        private void SaveCheckpoint(string path, int stepsDone, IBatchStream<TBatch> stream, List<double> losses, List<double> rates,
            List<double> norms, List<EvaluationPoint> evaluations, double best)
        {
            if (stream is not IResumableStream resumable)
                throw new InvalidOperationException($"Training of '{model.Card.Name}' cannot write checkpoints: its data stream cannot save its position.");
            var states = optimizer.state_dict().State;
            var entries = optimizerOrder.Select((p, i) => (p.Name, (Tensor)p.Parameter, ((AdamW.State)states[i]).exp_avg, ((AdamW.State)states[i]).exp_avg_sq)).ToList();
            var progress = new TrainingCheckpoint.Progress(1, model.Card.Name, stepsDone,
                optimizerOrder.Select((_, i) => ((AdamW.State)states[i]).step).ToArray(), resumable.SaveState(),
                losses.ToArray(), rates.ToArray(), norms.ToArray(), evaluations.Select(e => e.Step).ToArray(),
                evaluations.Select(e => e.Loss).ToArray(), best, TrainingCheckpoint.Fingerprint(Options));
            TrainingCheckpoint.Save(path, entries, progress);
        }

        private double Evaluate(ITaskData<TBatch> data, int step, List<EvaluationPoint> evaluations, ITrainingObserver? observer)
        {
            // The same batches at every evaluation: differences between points are the model's, not the sample's.
            double loss = EvaluateLoss(data, DataSplit.Validation, Options.EvalBatches, Options.Seed ^ 0x5EED_0F_E7A1UL);
            var point = new EvaluationPoint(step, loss);
            evaluations.Add(point);
            observer?.OnEvaluation(point);
            return loss;
        }

        private static double GradNorm(Parameter[] parameters)
        {
            double sumSquares = 0;
            foreach (var p in parameters)
            {
                using var grad = p.grad;
                if (grad is null) continue;
                using var norm = grad.norm();
                double n = norm.item<float>();
                sumSquares += n * n;
            }
            return Math.Sqrt(sumSquares);
        }
    }

    /// <summary>The address of a tensor's first element (libtorch <c>data_ptr()</c>), which TorchSharp does not expose.</summary>
    internal static class TensorData
    {
        private static bool unavailable;

        /// <summary>The data pointer, or zero when the native entry point cannot be reached.</summary>
        public static IntPtr Pointer(Tensor tensor)
        {
            if (unavailable) return IntPtr.Zero;
            try { return THSTensor_data(tensor.Handle); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                unavailable = true; // then only identical native tensors are recognised as shared
                return IntPtr.Zero;
            }
        }

        // TorchSharp's own export (THSTensor.cpp: `return tensor->data_ptr();`); the library is already loaded.
        [System.Runtime.InteropServices.DllImport("LibTorchSharp")]
        private static extern IntPtr THSTensor_data(IntPtr tensor);
    }
}
