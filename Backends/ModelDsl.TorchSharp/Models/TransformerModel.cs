using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// What every generated TorchSharp model is, whatever its family: its compile-time card, Hugging Face safetensors
    /// I/O under its checkpoint layout's names, its initialisation and its task loss. The op functions the generated
    /// code calls (Attention, Rotary, Experts, ...) are inherited from here (TransformerModel.Ops.cs), so a user's own
    /// types cannot shadow them. Task bases (<see cref="CausalLanguageModel"/>, <see cref="MaskedLanguageModel"/>,
    /// <see cref="SequenceClassificationModel"/>, <see cref="SequenceToSequenceModel"/>,
    /// <see cref="ImageClassificationModel"/>) add the public forward pass, input checks and loss of their task.
    /// </summary>
    public abstract partial class TransformerModel : nn.Module
    {
        /// <summary>The target id that the loss skips (PyTorch's ignore_index).</summary>
        public const long IgnoredTarget = -100;

        /// <summary>Loads TorchSharp first, so a broken native install fails with an explanation, not a TypeInitializationException.</summary>
        protected TransformerModel(ModelCard card) : base(LoadedFirst(card).Name) => Card = card;

        private static ModelCard LoadedFirst(ModelCard card)
        {
            ArgumentNullException.ThrowIfNull(card);
            TorchSharpRuntime.EnsureLoaded();
            return card;
        }

        /// <summary>The compile-time model card (shapes, parameter count, FLOPs, activation memory).</summary>
        public ModelCard Card { get; }

        /// <summary>How the model's checkpoint layout names tensors (generated).</summary>
        protected abstract CheckpointNames CheckpointNames { get; }

        /// <summary>Re-initialises every parameter as the layout's reference implementation does (generated).</summary>
        public abstract void ResetParameters();

        /// <summary>The task loss of logits against targets (generated from the graph's loss function).</summary>
        protected abstract Tensor TaskLoss(Tensor logits, Tensor targets);

        /// <summary>The device of the model's parameters.</summary>
        public Device Device => parameters().FirstOrDefault()?.device ?? torch.CPU;

        /// <summary>The floating-point type of the model's parameters.</summary>
        public ScalarType DType => parameters().FirstOrDefault()?.dtype ?? ScalarType.Float32;

        /// <summary>
        /// Loads a safetensors checkpoint with Hugging Face names (with or without the layout's optional prefix),
        /// all or nothing: on any mismatch the model is unchanged and the error lists every missing, unexpected or
        /// mis-shaped tensor. A copy of a tied tensor in the file (a tied head's lm_head.weight) must equal it: an
        /// untied checkpoint does not load silently into a model declared [TiedEmbeddings].
        /// </summary>
        public void LoadSafetensors(string path)
            => ModuleWeights.Load(this, path, Card.Name, MapCheckpointName(), CheckpointNames.TiedCopies);

        /// <summary>
        /// Loads a pretrained checkpoint whose head may differ from this model's, as Hugging Face's from_pretrained does:
        /// every tensor whose name (under the layout's names, with or without its optional prefix) is a parameter of this
        /// model is loaded; parameters the file lacks keep their initialisation (a new classification head); tensors this
        /// model has no parameter for are left unused (a masked-LM head). The result lists all three: check
        /// <see cref="PretrainedLoad.Missing"/> is the head you expect. A matching name with another shape or dtype kind,
        /// an untied copy of a tied parameter, or a file of which nothing matches fails as <see cref="LoadSafetensors(string)"/>
        /// does, all or nothing. Use <see cref="LoadSafetensors(string)"/> to resume a model of the same kind: there a missing or
        /// unexpected tensor is an error.
        /// </summary>
        /// <example><code>
        /// using var classifier = BertBase.CreateTorchSharp();   // [ClassificationHead(Classes = 2)]
        /// var load = classifier.LoadPretrained("bert-mlm.safetensors");
        /// Console.WriteLine(load);   // loaded 197 tensor(s); 4 not in the file keep their initialisation: 'bert.pooler.dense.weight', ...
        /// </code></example>
        /// <exception cref="SafetensorsException">The file is invalid, a matching tensor does not fit, or nothing matches.</exception>
        public PretrainedLoad LoadPretrained(string path)
            => ModuleWeights.LoadMatching(this, path, Card.Name, MapCheckpointName(), CheckpointNames.TiedCopies);

        private Func<string, string?> MapCheckpointName()
        {
            var names = new HashSet<string>(named_parameters().Select(p => p.name).Concat(named_buffers().Select(b => b.name)), StringComparer.Ordinal);
            return name => CheckpointNames.Map(name, names.Contains);
        }

        /// <summary>
        /// Loads a base-model checkpoint (Hugging Face's ViTModel, BertModel, GPT2Model: the tensors under the layout's
        /// prefix, stored with or without it) into everything but the task head, which keeps its current weights: the
        /// start of fine-tuning a pretrained encoder on a new task, as transformers' from_pretrained does with a new head.
        /// Every base parameter must be in the file, all or nothing as in <see cref="LoadSafetensors(string)"/>; head tensors the
        /// file carries (a checkpoint of another task, ImageNet's 1000 classes) are not read. Returns the names of the
        /// parameters that kept their weights, for the caller to report, as transformers warns about newly initialised weights.
        /// </summary>
        /// <exception cref="InvalidOperationException">The layout has no base-model prefix (T5: every tensor is the model's).</exception>
        public IReadOnlyList<string> LoadBaseModelSafetensors(string path)
        {
            string prefix = CheckpointNames.OptionalPrefix ?? throw new InvalidOperationException(
                $"Model '{Card.Name}': {CheckpointNames.Layout} checkpoints have no base-model prefix, so there is no head to leave out; use LoadSafetensors.");
            var names = new HashSet<string>(named_parameters().Select(p => p.name).Concat(named_buffers().Select(b => b.name)), StringComparer.Ordinal);
            bool IsHead(string name) => !name.StartsWith(prefix, StringComparison.Ordinal);
            var tiedCopies = CheckpointNames.TiedCopies.Where(t => !IsHead(t.Key)).ToDictionary(t => t.Key, t => t.Value, StringComparer.Ordinal);
            return ModuleWeights.Load(this, path, Card.Name,
                name => CheckpointNames.Map(name, names.Contains) is { } mapped && !(IsHead(mapped) && names.Contains(mapped)) ? mapped : null,
                tiedCopies, mayKeep: IsHead);
        }

        /// <summary>Saves weights under Hugging Face names, atomically (a crash never leaves a half-written file).</summary>
        public void SaveSafetensors(string path, IReadOnlyDictionary<string, string>? metadata = null)
            => ModuleWeights.Save(this, path, metadata);

        /// <summary>
        /// Rejects targets the loss would turn into a native crash or a silent NaN: they must be int64 ids in
        /// [0, <paramref name="classes"/>) or <see cref="IgnoredTarget"/>, shaped <paramref name="shape"/>, and not all
        /// ignored (the mean over no target is undefined; libtorch returns NaN).
        /// </summary>
        protected void CheckTargets(Tensor targets, long[] shape, long classes, string what)
        {
            ArgumentNullException.ThrowIfNull(targets, what);
            if (!targets.shape.SequenceEqual(shape) || targets.dtype != ScalarType.Int64)
                throw new ArgumentException(
                    $"Model '{Card.Name}': {what} must be int64 shaped [{string.Join(", ", shape)}], but are {targets.dtype} [{string.Join(", ", targets.shape)}].", what);
            using var counted = targets.ne(IgnoredTarget);
            using var outside = counted.logical_and(targets.lt(0).logical_or(targets.ge(classes)));
            if (outside.any().item<bool>())
                throw new ArgumentOutOfRangeException(what,
                    $"Model '{Card.Name}': a target in {what} is outside [0, {classes}) and is not the ignore index {IgnoredTarget}.");
            if (!counted.any().item<bool>())
                throw new ArgumentException(
                    $"Model '{Card.Name}': every target in {what} is the ignore index {IgnoredTarget}; the mean loss over no target is undefined.", what);
        }

        /// <summary>Rejects token ids the embedding would turn into a native crash: wrong rank or dtype, too long, outside the vocabulary.</summary>
        protected void CheckIds(Tensor ids, string what, long offset = 0, Tensor? batchOf = null)
        {
            ArgumentNullException.ThrowIfNull(ids, what);
            if (ids.dim() != 2)
                throw new ArgumentException($"Model '{Card.Name}': {what} must be [batch, time], but have {ids.dim()} dimensions [{string.Join(", ", ids.shape)}].", what);
            if (ids.dtype != ScalarType.Int64)
                throw new ArgumentException($"Model '{Card.Name}': {what} must be int64, but are {ids.dtype}.", what);
            if (batchOf is not null && ids.shape[0] != batchOf.shape[0])
                throw new ArgumentException($"Model '{Card.Name}': {what} dimension 0 (batch) is {ids.shape[0]}, but the batch has {batchOf.shape[0]} sequence(s).", what);
            long time = ids.shape[1];
            if (time == 0 || offset + time > Card.Context)
                throw new ArgumentException(
                    $"Model '{Card.Name}': {what} dimension 1 (time) is {time}" + (offset > 0 ? $" after {offset} cached positions" : "") +
                    $"; it must be between 1 and the context of {Card.Context}" + (offset > 0 ? $" minus the cache ({Card.Context - offset})." : "."), what);
            // One reduction and one host sync per call (a GPU would stall once, not twice); the slow path finds the id.
            using var outside = ids.lt(0).logical_or_(ids.ge(Card.Vocab));
            using var any = outside.any();
            if (any.item<bool>())
            {
                using var bad = ids.masked_select(outside);
                throw new ArgumentOutOfRangeException(what,
                    $"Model '{Card.Name}': token id {bad[0].item<long>()} in {what} is outside the vocabulary [0, {Card.Vocab}).");
            }
        }

        /// <summary>Rejects a padding mask that does not match its ids: [batch, time], bool.</summary>
        protected void CheckMask(Tensor mask, Tensor ids, string what)
        {
            if (mask.dtype != ScalarType.Bool || !mask.shape.SequenceEqual(ids.shape))
                throw new ArgumentException(
                    $"Model '{Card.Name}': {what} must be bool shaped like the ids [{string.Join(", ", ids.shape)}] (true = a real token), but is {mask.dtype} [{string.Join(", ", mask.shape)}].", what);
        }

        /// <summary>A forward pass's result: the logits, and what the state gathered (auxiliary loss, expert load).</summary>
        protected static ModelOutput Output(Tensor logits, ForwardState state)
            => new(logits, state.AuxiliaryLoss(), state.ExpertLoad);

        /// <summary>Loss = task loss + the auxiliary loss of the same pass, if any.</summary>
        protected static Tensor WithAuxiliary(Tensor loss, ModelOutput output)
            => output.AuxiliaryLoss is null ? loss : loss + output.AuxiliaryLoss;
    }
}
