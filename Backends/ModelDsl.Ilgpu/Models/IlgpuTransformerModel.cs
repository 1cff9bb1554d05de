using System;
using System.Collections.Generic;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using ModelDsl.Checkpoints;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// The base of every generated ILGPU model: the parameters (one flat buffer, Hugging Face names), the buffer plan
    /// (one device allocation, sized for the largest batch seen), the inputs, and a training step built from the
    /// generated forward and backward passes and the fused AdamW kernel. A generated class supplies the plan, the
    /// passes and its checkpoint names; it never allocates.
    /// </summary>
    public abstract class IlgpuTransformerModel : IDisposable
    {
        private readonly ulong seed;
        private MemoryBuffer1D<float, Stride1D.Dense>? arena;
        private long arenaElements;
        private MemoryBuffer1D<int, Stride1D.Dense>? inputs;
        private MemoryBuffer1D<float, Stride1D.Dense>? images;
        private readonly MemoryBuffer1D<float, Stride1D.Dense> sumOfSquares;
        private (int Batch, int Time, int SourceTime) sizedFor;

        protected IlgpuTransformerModel(IlgpuDevice device, ModelCard card, IReadOnlyList<ParameterInfo> parameters, ulong seed)
        {
            ArgumentNullException.ThrowIfNull(device);
            ArgumentNullException.ThrowIfNull(card);
            Device = device;
            Card = card;
            this.seed = seed;
            Parameters = new ParameterStore(device.Accelerator, card.Name, parameters);
            sumOfSquares = device.Accelerator.Allocate1D<float>(1);
        }

        public ModelCard Card { get; }

        public IlgpuDevice Device { get; }

        public ParameterStore Parameters { get; }

        /// <summary>Trainable scalars (tied tensors once).</summary>
        public long ParameterCount => Parameters.Count;

        protected Kernels Kernels => Device.Kernels;

        // ---------------------------------------------------------------- what the generated class supplies

        protected abstract IEnumerable<DeviceBuffer> Buffers { get; }

        protected abstract ArrayView<float> LogitsOutput { get; }

        protected abstract ArrayView<float> LossOutput { get; }

        protected abstract CheckpointNames CheckpointNames { get; }

        protected abstract void Forward();

        protected abstract void LossForward();

        protected abstract void Backward();

        // ---------------------------------------------------------------- what the generated code reads

        protected int Batch { get; private set; }

        protected int Time { get; private set; }

        protected int Tokens => Batch * Time;

        /// <summary>The source sequence's length (an encoder-decoder's encoder side), else 0.</summary>
        protected int SourceTime { get; private set; }

        protected ArrayView<int> Ids { get; private set; }

        protected ArrayView<int> Targets { get; private set; }

        /// <summary>Token-type ids [Batch, Time] (0 when the caller gives none).</summary>
        protected ArrayView<int> SegmentIds { get; private set; }

        /// <summary>1 for a real token, 0 for padding [Batch, Time] (all 1 when the caller gives no mask).</summary>
        protected ArrayView<int> PaddingMask { get; private set; }

        /// <summary>Source token ids [Batch, SourceTime] of an encoder-decoder.</summary>
        protected ArrayView<int> SourceIds { get; private set; }

        /// <summary>1 for a real source token, 0 for padding [Batch, SourceTime] (all 1 when the caller gives no mask).</summary>
        protected ArrayView<int> SourceMask { get; private set; }

        /// <summary>Images [Batch, Channels, ImageSize, ImageSize] of a vision model.</summary>
        protected ArrayView<float> Pixels { get; private set; }

        /// <summary>True in a training step (dropout on), false for logits and evaluation losses.</summary>
        protected bool Training { get; private set; }

        /// <summary>
        /// The seed of one dropout site's mask in this step: the model's seed, the step count, the site and the layer
        /// hashed together, so masks differ between sites, layers and steps and repeat exactly for a given seed.
        /// </summary>
        protected ulong DropoutSeed(int site, int layer)
        {
            ulong z = seed ^ (ulong)dropoutSteps * 0x9E3779B97F4A7C15UL ^ (ulong)site << 40 ^ (ulong)layer << 20;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        private long dropoutSteps;

        /// <summary>d(mean loss)/d(per-token loss): 1 over the targets that count (not -100).</summary>
        protected float LossScale { get; private set; }

        protected ArrayView<float> Weight(string name, int layer = 0) => Parameters.Weight(name, layer);

        protected ArrayView<float> Gradient(string name, int layer = 0) => Parameters.Gradient(name, layer);

        protected static void Zero(ArrayView<float> view) => view.MemSetToZero();

        protected static void Copy(ArrayView<float> destination, ArrayView<float> source) => source.CopyTo(destination);

        /// <summary>Called by the generated constructor once the plan's fields exist.</summary>
        protected void Initialize() => ResetParameters(seed);

        // ---------------------------------------------------------------- parameters

        /// <summary>Draws every parameter again from its declared initialisation (host-side, seeded, so it is the same on every device).</summary>
        public void ResetParameters(ulong seed)
        {
            var random = new Random(unchecked((int)seed ^ (int)(seed >> 32)));
            var values = new float[Parameters.Count];
            foreach (var info in Parameters.Infos)
                foreach (var name in info.InstanceNames())
                {
                    var slot = Parameters.Slot(name);
                    var span = values.AsSpan((int)slot.Offset, (int)slot.Length);
                    switch (info.Init)
                    {
                        case InitKind.Ones: span.Fill(1f); break;
                        case InitKind.Zeros: span.Clear(); break;
                        default:
                            for (int i = 0; i < span.Length; i++) span[i] = (float)(info.Std * Gaussian(random));
                            break;
                    }
                }
            Parameters.Values.CopyFromCPU(values);
            Parameters.ResetOptimizer();
        }

        private static double Gaussian(Random random)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
        }

        /// <summary>Loads a safetensors checkpoint with Hugging Face names (all or nothing; see <see cref="ParameterStore.Load"/>).</summary>
        public void LoadSafetensors(string path)
            => Parameters.Load(path, name => CheckpointNames.Map(name, Parameters.Contains), CheckpointNames.TiedCopies);

        /// <summary>Saves every parameter as F32 safetensors under Hugging Face names, atomically (the TorchSharp backend reads the file as it is).</summary>
        public void SaveSafetensors(string path, IReadOnlyDictionary<string, string>? metadata = null)
            => Parameters.Save(path, metadata ?? new Dictionary<string, string> { ["format"] = "pt", ["model"] = Card.Name });

        // ---------------------------------------------------------------- steps

        /// <summary>
        /// Uploads a batch and sizes the buffers for it, after checking every value: ids against the vocabulary, targets
        /// (one per token, or with <paramref name="labels"/> one class per sequence) against the vocabulary or the
        /// classes, segment ids against the segment types, and a padding mask (true for real tokens) of the ids' shape.
        /// Missing segments are all 0; a missing mask means no padding.
        /// </summary>
        protected void SetInputs(ReadOnlySpan<int> ids, ReadOnlySpan<int> targets, int batch, int time,
            ReadOnlySpan<int> segments = default, ReadOnlySpan<bool> mask = default, bool labels = false)
        {
            CheckBatch(batch);
            if (time < 1 || time > Card.Context)
                throw new ArgumentOutOfRangeException(nameof(time), time, $"Model '{Card.Name}': sequences have 1 to Context = {Card.Context} tokens, not {time}.");
            long tokens = (long)batch * time;
            string shape = $"[Batch={batch}, Time={time}]";
            CheckIds(ids, tokens, time, "ids", shape);
            if (!segments.IsEmpty)
            {
                if (segments.Length != tokens)
                    throw new ArgumentException($"Model '{Card.Name}': segments has {segments.Length} elements; {shape} needs {tokens}.", nameof(segments));
                int types = Math.Max(1, Card.SegmentTypes);
                for (int i = 0; i < segments.Length; i++)
                    if ((uint)segments[i] >= (uint)types)
                        throw new ArgumentException($"Model '{Card.Name}': segments[{i / time}, {i % time}] = {segments[i]} is outside the segment types [0, {types}).", nameof(segments));
            }
            if (!mask.IsEmpty && mask.Length != tokens)
                throw new ArgumentException($"Model '{Card.Name}': the padding mask has {mask.Length} elements; {shape} needs {tokens}.", nameof(mask));
            int counted = labels ? CountTargets(targets, batch, Card.Classes, "labels", $"[Batch={batch}]", i => $"{i}")
                : CountTargets(targets, tokens, Card.Vocab, "targets", shape, i => $"{i / time}, {i % time}");

            SizeBuffers(batch, time);
            var views = InputViews(4 * tokens);
            Ids = views.SubView(0, tokens);
            Targets = views.SubView(tokens, targets.IsEmpty ? tokens : targets.Length);
            SegmentIds = views.SubView(2 * tokens, tokens);
            PaddingMask = views.SubView(3 * tokens, tokens);
            Ids.CopyFromCPU(ids.ToArray());
            if (!targets.IsEmpty) Targets.CopyFromCPU(targets.ToArray());
            var host = new int[tokens];
            if (!segments.IsEmpty) segments.CopyTo(host);
            SegmentIds.CopyFromCPU(host);
            for (int i = 0; i < host.Length; i++) host[i] = mask.IsEmpty || mask[i] ? 1 : 0;
            PaddingMask.CopyFromCPU(host);
            LossScale = counted == 0 ? 0f : 1f / counted;
        }

        /// <summary>
        /// Uploads a sequence-to-sequence batch and sizes the buffers for it: source ids [batch, sourceTime] with an
        /// optional source padding mask (true for real tokens), the decoder's input ids [batch, time] and optional
        /// targets [batch, time] (-100: ignored), every value checked. The encoder's padding mask is the source mask.
        /// </summary>
        protected void SetSequencePair(ReadOnlySpan<int> source, ReadOnlySpan<bool> sourceMask, ReadOnlySpan<int> ids, ReadOnlySpan<int> targets,
            int batch, int sourceTime, int time)
        {
            CheckBatch(batch);
            foreach (var (name, length) in new[] { ("sourceTime", sourceTime), ("time", time) })
                if (length < 1 || length > Card.Context)
                    throw new ArgumentOutOfRangeException(name, length, $"Model '{Card.Name}': {(name == "time" ? "target" : "source")} sequences have 1 to Context = {Card.Context} tokens, not {length}.");
            long sources = (long)batch * sourceTime, tokens = (long)batch * time;
            CheckIds(source, sources, sourceTime, "source", $"[Batch={batch}, SourceTime={sourceTime}]");
            CheckIds(ids, tokens, time, "ids", $"[Batch={batch}, Time={time}]");
            if (!sourceMask.IsEmpty && sourceMask.Length != sources)
                throw new ArgumentException($"Model '{Card.Name}': the source mask has {sourceMask.Length} elements; [Batch={batch}, SourceTime={sourceTime}] needs {sources}.", nameof(sourceMask));
            int counted = CountTargets(targets, tokens, Card.Vocab, "targets", $"[Batch={batch}, Time={time}]", i => $"{i / time}, {i % time}");

            SizeBuffers(batch, time, sourceTime);
            var views = InputViews(2 * tokens + 2 * sources);
            Ids = views.SubView(0, tokens);
            Targets = views.SubView(tokens, tokens);
            SourceIds = views.SubView(2 * tokens, sources);
            SourceMask = views.SubView(2 * tokens + sources, sources);
            PaddingMask = SourceMask;
            Ids.CopyFromCPU(ids.ToArray());
            if (!targets.IsEmpty) Targets.CopyFromCPU(targets.ToArray());
            SourceIds.CopyFromCPU(source.ToArray());
            var host = new int[sources];
            for (int i = 0; i < host.Length; i++) host[i] = sourceMask.IsEmpty || sourceMask[i] ? 1 : 0;
            SourceMask.CopyFromCPU(host);
            LossScale = counted == 0 ? 0f : 1f / counted;
        }

        private void CheckIds(ReadOnlySpan<int> ids, long expected, int time, string name, string shape)
        {
            if (ids.Length != expected)
                throw new ArgumentException($"Model '{Card.Name}': {name} has {ids.Length} elements; {shape} needs {expected}.", name);
            for (int i = 0; i < ids.Length; i++)
                if ((uint)ids[i] >= (uint)Card.Vocab)
                    throw new ArgumentException($"Model '{Card.Name}': {name}[{i / time}, {i % time}] = {ids[i]} is outside the vocabulary [0, Vocab = {Card.Vocab}).", name);
        }

        /// <summary>
        /// Uploads a batch of images [batch, Channels, ImageSize, ImageSize] (row-major floats, every value finite) and
        /// optional labels [batch], and sizes the buffers for it: the sequences are the Patches + 1 tokens.
        /// </summary>
        protected void SetImages(ReadOnlySpan<float> pixels, ReadOnlySpan<int> labels, int batch)
        {
            CheckBatch(batch);
            long perImage = (long)Card.Channels * Card.ImageSize * Card.ImageSize;
            string wanted = $"[Batch={batch}, Channels={Card.Channels}, ImageSize={Card.ImageSize}, ImageSize={Card.ImageSize}]";
            if (pixels.Length != batch * perImage)
                throw new ArgumentException($"Model '{Card.Name}': pixels has {pixels.Length} elements; {wanted} needs {batch * perImage}.", nameof(pixels));
            for (int i = 0; i < pixels.Length; i++)
                if (!float.IsFinite(pixels[i]))
                {
                    long image = i / perImage, c = i % perImage / (Card.ImageSize * Card.ImageSize), y = i % (Card.ImageSize * Card.ImageSize) / Card.ImageSize;
                    throw new ArgumentException($"Model '{Card.Name}': pixels[{image}, {c}, {y}, {i % Card.ImageSize}] = {pixels[i]} is not a finite number.", nameof(pixels));
                }
            int counted = CountTargets(labels, batch, Card.Classes, "labels", $"[Batch={batch}]", i => $"{i}");

            int side = Card.ImageSize / Card.PatchSize;
            SizeBuffers(batch, side * side + 1);
            Targets = InputViews(batch).SubView(0, batch);
            if (!labels.IsEmpty) Targets.CopyFromCPU(labels.ToArray());
            if (images is null || images.Length < pixels.Length)
            {
                images?.Dispose();
                images = Device.Accelerator.Allocate1D<float>(pixels.Length);
            }
            Pixels = images.View.SubView(0, pixels.Length);
            Pixels.CopyFromCPU(pixels.ToArray());
            LossScale = counted == 0 ? 0f : 1f / counted;
        }

        private void CheckBatch(int batch)
        {
            if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, $"Model '{Card.Name}': the batch must hold at least one sequence.");
        }

        /// <summary>Checks targets (empty: none) and returns how many count (are not <see cref="IgnoredTarget"/>).</summary>
        private int CountTargets(ReadOnlySpan<int> targets, long expected, int classes, string what, string shape, Func<int, string> at)
        {
            if (targets.IsEmpty) return 0;
            bool labels = what == "labels";
            if (targets.Length != expected)
                throw new ArgumentException($"Model '{Card.Name}': {what} has {targets.Length} elements; {shape} needs {expected}.", what);
            int counted = 0;
            for (int i = 0; i < targets.Length; i++)
            {
                if (targets[i] == IgnoredTarget) continue;
                if ((uint)targets[i] >= (uint)classes)
                    throw new ArgumentException($"Model '{Card.Name}': {what}[{at(i)}] = {targets[i]} is neither {(labels ? "a class" : "a token id")} below {(labels ? "Classes" : "Vocab")} = {classes} nor {IgnoredTarget} (ignored).", what);
                counted++;
            }
            if (counted == 0)
                throw new ArgumentException($"Model '{Card.Name}': every one of the {what} is {IgnoredTarget} (ignored): the mean loss of nothing is undefined.", what);
            return counted;
        }

        /// <summary>The integer inputs' device memory, grown on demand.</summary>
        private ArrayView<int> InputViews(long length)
        {
            if (inputs is null || inputs.Length < length)
            {
                inputs?.Dispose();
                inputs = Device.Accelerator.Allocate1D<int>(length);
            }
            return inputs.View;
        }

        public const int IgnoredTarget = -100;

        /// <summary>Binds every buffer of the plan for [batch, time] (and source time), growing the one allocation when it is too small.</summary>
        private void SizeBuffers(int batch, int time, int sourceTime = 0)
        {
            Batch = batch;
            Time = time;
            SourceTime = sourceTime;
            if (sizedFor == (batch, time, sourceTime)) return;
            var buffers = Buffers.ToList();
            long total = 0;
            foreach (var b in buffers) total = checked(total + b.FloatsPerCopy(batch, time, sourceTime) * b.Copies);
            if (arena is null || total > arenaElements)
            {
                arena?.Dispose();
                arena = Device.Accelerator.Allocate1D<float>(Math.Max(1, total));
                arenaElements = total;
            }
            long offset = 0;
            foreach (var b in buffers)
            {
                long perCopy = b.FloatsPerCopy(batch, time, sourceTime);
                b.Bind(arena.View.SubView(offset, perCopy * b.Copies), perCopy, b.ElementsPerCopy(batch, time, sourceTime));
                offset += perCopy * b.Copies;
            }
            sizedFor = (batch, time, sourceTime);
        }

        /// <summary>Bytes of the buffer plan for [batch, time] (and source time: what a step allocates beyond the parameters and optimizer state).</summary>
        public long PlanBytes(int batch, int time, int sourceTime = 0) => 4 * Buffers.Sum(b => b.FloatsPerCopy(batch, time, sourceTime) * b.Copies);

        /// <summary>The forward pass in evaluation mode (no dropout).</summary>
        protected void RunLogits()
        {
            Training = false;
            Forward();
        }

        /// <summary>The forward pass and the loss (evaluation mode); returns the mean loss.</summary>
        protected float RunLoss()
        {
            Training = false;
            Forward();
            LossForward();
            return ReadScalar(LossOutput);
        }

        /// <summary>Zeroes the parameter gradients, runs forward (training mode: dropout on), loss and backward; returns the mean loss.</summary>
        protected float RunForwardBackward()
        {
            Parameters.ZeroGradients();
            Training = true;
            dropoutSteps++;
            Forward();
            LossForward();
            Backward();
            return ReadScalar(LossOutput);
        }

        private float ReadScalar(ArrayView<float> view)
        {
            var value = new float[1];
            view.SubView(0, 1).CopyToCPU(value);
            return value[0];
        }

        /// <summary>The global L2 norm of the gradients of the parameters that train (before clipping).</summary>
        public float GradientNorm()
        {
            Kernels.SumOfSquares(sumOfSquares.View, Parameters.Gradients.SubView(0, Parameters.TrainableCount));
            return MathF.Sqrt(ReadScalar(sumOfSquares.View));
        }

        /// <summary>
        /// One AdamW update of every parameter, the gradients first clipped to a global norm of
        /// <paramref name="maxGradNorm"/> as torch.nn.utils.clip_grad_norm_ does (no clipping when it is 0 or infinite).
        /// Matrices get weight decay, vectors not, as the TorchSharp trainer's parameter groups do; with the base frozen
        /// only the LoRA adapters step (<see cref="ParameterStore.FreezeBase"/>). Returns the gradient norm before clipping
        /// (the kernel reads it on the device; the host reads it afterwards for reports).
        /// </summary>
        public float AdamWStep(int step, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, float maxGradNorm)
        {
            long trainable = Parameters.TrainableCount;
            var gradients = Parameters.Gradients.SubView(0, trainable);
            Kernels.SumOfSquares(sumOfSquares.View, gradients);
            Kernels.AdamW(Parameters.Values.SubView(0, trainable), gradients, Parameters.FirstMoments.SubView(0, trainable), Parameters.SecondMoments.SubView(0, trainable),
                sumOfSquares.View, new AdamWStep(learningRate, beta1, beta2, epsilon, weightDecay, step, maxGradNorm, Math.Min(Parameters.DecayedCount, trainable)));
            return MathF.Sqrt(ReadScalar(sumOfSquares.View));
        }

        /// <summary>Waits for the device (kernels run asynchronously).</summary>
        public void Synchronize() => Device.Accelerator.Synchronize();

        public virtual void Dispose()
        {
            arena?.Dispose();
            inputs?.Dispose();
            images?.Dispose();
            sumOfSquares.Dispose();
            Parameters.Dispose();
            GC.SuppressFinalize(this);
        }
    }

    /// <summary>A causal language model on ILGPU: logits, loss and training steps over token ids.</summary>
    public abstract class IlgpuCausalLanguageModel : IlgpuTransformerModel
    {
        protected IlgpuCausalLanguageModel(IlgpuDevice device, ModelCard card, IReadOnlyList<ParameterInfo> parameters, ulong seed)
            : base(device, card, parameters, seed)
        {
        }

        /// <summary>Logits [batch, time, Vocab] (row-major) for token ids [batch, time].</summary>
        public float[] Logits(ReadOnlySpan<int> ids, int batch, int time)
        {
            SetInputs(ids, ReadOnlySpan<int>.Empty, batch, time);
            RunLogits();
            var result = new float[(long)batch * time * Card.Vocab];
            LogitsOutput.SubView(0, result.Length).CopyToCPU(result);
            return result;
        }

        /// <summary>The mean cross-entropy of the next-token predictions against <paramref name="targets"/> (-100: ignored).</summary>
        public float Loss(ReadOnlySpan<int> ids, ReadOnlySpan<int> targets, int batch, int time)
        {
            SetInputs(ids, RequireTargets(targets), batch, time);
            return RunLoss();
        }

        /// <summary>The loss and, in <see cref="ParameterStore.Gradients"/>, its gradient with respect to every parameter.</summary>
        public float ForwardBackward(ReadOnlySpan<int> ids, ReadOnlySpan<int> targets, int batch, int time)
        {
            SetInputs(ids, RequireTargets(targets), batch, time);
            return RunForwardBackward();
        }

        private ReadOnlySpan<int> RequireTargets(ReadOnlySpan<int> targets)
            => targets.IsEmpty ? throw new ArgumentException($"Model '{Card.Name}': the loss needs targets.", nameof(targets)) : targets;
    }

    /// <summary>
    /// What the BERT-style bases share: the forward pass over token ids, segment ids (default 0) and a padding mask (true
    /// for real tokens; default: no padding), which no token attends to. <see cref="PerSequence"/> says whether the
    /// head predicts one class per sequence or one token per position.
    /// </summary>
    public abstract class IlgpuEncoderModel : IlgpuTransformerModel
    {
        protected IlgpuEncoderModel(IlgpuDevice device, ModelCard card, IReadOnlyList<ParameterInfo> parameters, ulong seed)
            : base(device, card, parameters, seed)
        {
        }

        /// <summary>True for a classifier (logits [batch, Classes], labels [batch]), false for a token head (logits [batch, time, Vocab]).</summary>
        private protected abstract bool PerSequence { get; }

        private string TargetsName => PerSequence ? "labels" : "targets";

        /// <summary>The head's logits (row-major): [batch, Classes] for a classifier, [batch, time, Vocab] for a masked language model.</summary>
        public float[] Logits(ReadOnlySpan<int> ids, int batch, int time, ReadOnlySpan<int> segments = default, ReadOnlySpan<bool> mask = default)
        {
            SetInputs(ids, ReadOnlySpan<int>.Empty, batch, time, segments, mask, PerSequence);
            RunLogits();
            var result = new float[PerSequence ? (long)batch * Card.Classes : (long)batch * time * Card.Vocab];
            LogitsOutput.SubView(0, result.Length).CopyToCPU(result);
            return result;
        }

        /// <summary>The mean cross-entropy of the head against <paramref name="targets"/> (-100: ignored; masked language models ignore every unmasked position).</summary>
        public float Loss(ReadOnlySpan<int> ids, ReadOnlySpan<int> targets, int batch, int time, ReadOnlySpan<int> segments = default, ReadOnlySpan<bool> mask = default)
        {
            SetInputs(ids, Require(targets), batch, time, segments, mask, PerSequence);
            return RunLoss();
        }

        /// <summary>The loss and, in <see cref="ParameterStore.Gradients"/>, its gradient with respect to every parameter.</summary>
        public float ForwardBackward(ReadOnlySpan<int> ids, ReadOnlySpan<int> targets, int batch, int time, ReadOnlySpan<int> segments = default, ReadOnlySpan<bool> mask = default)
        {
            SetInputs(ids, Require(targets), batch, time, segments, mask, PerSequence);
            return RunForwardBackward();
        }

        private ReadOnlySpan<int> Require(ReadOnlySpan<int> targets)
            => targets.IsEmpty ? throw new ArgumentException($"Model '{Card.Name}': the loss needs {TargetsName}.", TargetsName) : targets;
    }

    /// <summary>A BERT-style masked language model on ILGPU: logits for every position, the loss over the masked ones (targets -100 elsewhere).</summary>
    public abstract class IlgpuMaskedLanguageModel : IlgpuEncoderModel
    {
        protected IlgpuMaskedLanguageModel(IlgpuDevice device, ModelCard card, IReadOnlyList<ParameterInfo> parameters, ulong seed)
            : base(device, card, parameters, seed)
        {
        }

        private protected override bool PerSequence => false;
    }

    /// <summary>A BERT-style sequence classifier on ILGPU: class logits from the pooled first token, labels one per sequence.</summary>
    public abstract class IlgpuSequenceClassificationModel : IlgpuEncoderModel
    {
        protected IlgpuSequenceClassificationModel(IlgpuDevice device, ModelCard card, IReadOnlyList<ParameterInfo> parameters, ulong seed)
            : base(device, card, parameters, seed)
        {
        }

        private protected override bool PerSequence => true;
    }

    /// <summary>A ViT-style image classifier on ILGPU: class logits [batch, Classes] for images [batch, Channels, ImageSize, ImageSize].</summary>
    public abstract class IlgpuImageClassificationModel : IlgpuTransformerModel
    {
        protected IlgpuImageClassificationModel(IlgpuDevice device, ModelCard card, IReadOnlyList<ParameterInfo> parameters, ulong seed)
            : base(device, card, parameters, seed)
        {
        }

        /// <summary>Class logits [batch, Classes] (row-major) for images [batch, Channels, ImageSize, ImageSize] (row-major).</summary>
        public float[] Logits(ReadOnlySpan<float> pixels, int batch)
        {
            SetImages(pixels, ReadOnlySpan<int>.Empty, batch);
            RunLogits();
            var result = new float[(long)batch * Card.Classes];
            LogitsOutput.SubView(0, result.Length).CopyToCPU(result);
            return result;
        }

        /// <summary>The mean cross-entropy of the class logits against <paramref name="labels"/> [batch] (-100: ignored).</summary>
        public float Loss(ReadOnlySpan<float> pixels, ReadOnlySpan<int> labels, int batch)
        {
            SetImages(pixels, Require(labels), batch);
            return RunLoss();
        }

        /// <summary>The loss and, in <see cref="ParameterStore.Gradients"/>, its gradient with respect to every parameter.</summary>
        public float ForwardBackward(ReadOnlySpan<float> pixels, ReadOnlySpan<int> labels, int batch)
        {
            SetImages(pixels, Require(labels), batch);
            return RunForwardBackward();
        }

        private ReadOnlySpan<int> Require(ReadOnlySpan<int> labels)
            => labels.IsEmpty ? throw new ArgumentException($"Model '{Card.Name}': the loss needs labels.", nameof(labels)) : labels;
    }

    /// <summary>
    /// A T5-style encoder-decoder on ILGPU: logits [batch, time, Vocab] for the decoder's input ids given source ids
    /// (teacher forcing), the loss against the targets, and training steps.
    /// </summary>
    public abstract class IlgpuSequenceToSequenceModel : IlgpuTransformerModel
    {
        protected IlgpuSequenceToSequenceModel(IlgpuDevice device, ModelCard card, IReadOnlyList<ParameterInfo> parameters, ulong seed)
            : base(device, card, parameters, seed)
        {
        }

        /// <summary>Logits [batch, time, Vocab] for decoder input ids [batch, time] given source ids [batch, sourceTime] (mask: true for real source tokens; default: none padded).</summary>
        public float[] Logits(ReadOnlySpan<int> source, ReadOnlySpan<int> ids, int batch, int sourceTime, int time, ReadOnlySpan<bool> sourceMask = default)
        {
            SetSequencePair(source, sourceMask, ids, ReadOnlySpan<int>.Empty, batch, sourceTime, time);
            RunLogits();
            var result = new float[(long)batch * time * Card.Vocab];
            LogitsOutput.SubView(0, result.Length).CopyToCPU(result);
            return result;
        }

        /// <summary>The mean cross-entropy of the decoder's predictions against <paramref name="targets"/> [batch, time] (-100: ignored).</summary>
        public float Loss(ReadOnlySpan<int> source, ReadOnlySpan<int> ids, ReadOnlySpan<int> targets, int batch, int sourceTime, int time, ReadOnlySpan<bool> sourceMask = default)
        {
            SetSequencePair(source, sourceMask, ids, Require(targets), batch, sourceTime, time);
            return RunLoss();
        }

        /// <summary>The loss and, in <see cref="ParameterStore.Gradients"/>, its gradient with respect to every parameter.</summary>
        public float ForwardBackward(ReadOnlySpan<int> source, ReadOnlySpan<int> ids, ReadOnlySpan<int> targets, int batch, int sourceTime, int time, ReadOnlySpan<bool> sourceMask = default)
        {
            SetSequencePair(source, sourceMask, ids, Require(targets), batch, sourceTime, time);
            return RunForwardBackward();
        }

        private ReadOnlySpan<int> Require(ReadOnlySpan<int> targets)
            => targets.IsEmpty ? throw new ArgumentException($"Model '{Card.Name}': the loss needs targets.", nameof(targets)) : targets;
    }
}

