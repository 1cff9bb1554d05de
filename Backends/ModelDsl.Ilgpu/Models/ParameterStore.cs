using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ModelDsl.Checkpoints;

namespace ModelDsl.Ilgpu
{
    /// <summary>One parameter instance in the flat buffers: its checkpoint name, shape and element range.</summary>
    public sealed record ParameterSlot(string Name, long[] Shape, long Offset, long Length, bool Decayed);

    /// <summary>
    /// Every parameter of a model in one flat device buffer, with gradients and AdamW's two moments in three more of
    /// the same layout (llm.c's layout: one allocation each, so the optimizer and the gradient norm are one launch
    /// over the whole model). LoRA adapters come first, then the other matrices, then vectors, so AdamW decays exactly the
    /// elements below <see cref="DecayedCount"/>, and with the base frozen it runs over the adapters alone, the first
    /// <see cref="AdapterCount"/> elements (all matrices). Parameters are found by their Hugging Face name, "{layer}" and
    /// all. A layer's experts lie one after another, so <see cref="Weight"/> of a per-expert name is that layer's
    /// [experts, ...] block, which the expert kernels index by the routed expert.
    /// </summary>
    public sealed class ParameterStore : IDisposable
    {
        /// <summary>Per template name, each layer's block (all its experts), by layer index (null: a layer that holds none).</summary>
        private readonly Dictionary<string, (long Offset, long Length)?[]> byTemplate = new(StringComparer.Ordinal);
        private readonly Dictionary<string, ParameterSlot> byName = new(StringComparer.Ordinal);
        private readonly MemoryBuffer1D<float, Stride1D.Dense> values, gradients, m, v;

        public ParameterStore(Accelerator accelerator, string modelName, IReadOnlyList<ParameterInfo> parameters)
        {
            ModelName = modelName;
            var slots = new List<ParameterSlot>();
            long offset = 0;
            // Adapters, then the other decayed parameters, then the rest, each group in the graph's order (stable: the layout is deterministic).
            var adapters = parameters.Where(p => p.Adapter).ToList();
            if (adapters.Any(p => !p.Decayed))
                throw new ArgumentException($"Model '{modelName}': LoRA adapters are matrices; '{adapters.First(p => !p.Decayed).Name}' is not.", nameof(parameters));
            foreach (var info in adapters.Concat(parameters.Where(p => p.Decayed && !p.Adapter)).Concat(parameters.Where(p => !p.Decayed)))
            {
                var layers = info.LayerIndices;
                var blocks = new (long Offset, long Length)?[layers.Max() + 1];
                foreach (int layer in layers)
                {
                    long start = offset;
                    for (int expert = 0; expert < Math.Max(1, info.Experts); expert++)
                    {
                        var slot = new ParameterSlot(info.NameAt(layer, expert), info.Shape, offset, info.Elements, info.Decayed);
                        offset = checked(offset + info.Elements);
                        if (!byName.TryAdd(slot.Name, slot))
                            throw new ArgumentException($"Model '{modelName}': the parameter '{slot.Name}' is declared twice.", nameof(parameters));
                        slots.Add(slot);
                    }
                    blocks[layer] = (start, offset - start);
                }
                byTemplate[info.Name] = blocks;
                if (info.Decayed) DecayedCount = offset;
                if (info.Adapter) AdapterCount = offset;
            }
            Infos = parameters;
            Slots = slots;
            Count = offset;
            values = accelerator.Allocate1D<float>(Math.Max(1, Count));
            gradients = accelerator.Allocate1D<float>(Math.Max(1, Count));
            m = accelerator.Allocate1D<float>(Math.Max(1, Count));
            v = accelerator.Allocate1D<float>(Math.Max(1, Count));
            foreach (var b in new[] { values, gradients, m, v }) b.MemSetToZero();
        }

        public string ModelName { get; }

        /// <summary>The parameters as declared.</summary>
        public IReadOnlyList<ParameterInfo> Infos { get; }

        /// <summary>Every instance, in buffer order.</summary>
        public IReadOnlyList<ParameterSlot> Slots { get; }

        /// <summary>Trainable scalars.</summary>
        public long Count { get; }

        /// <summary>Elements [0, DecayedCount) get AdamW's weight decay.</summary>
        public long DecayedCount { get; }

        /// <summary>Elements [0, AdapterCount) are LoRA adapters (0 without [Lora]).</summary>
        public long AdapterCount { get; }

        /// <summary>
        /// Whether only the adapters train (<see cref="AdapterCount"/> elements; the base weights keep their values), as
        /// the TorchSharp backend's model.Lora.Freeze() makes them. Gradients are still computed for every parameter.
        /// </summary>
        public bool BaseFrozen { get; private set; }

        /// <summary>Trains the adapters alone (see <see cref="BaseFrozen"/>); the optimizer's moments start afresh.</summary>
        public void FreezeBase()
        {
            if (AdapterCount == 0) throw new InvalidOperationException($"Model '{ModelName}' has no LoRA adapters to train alone: declare [Lora].");
            BaseFrozen = true;
            ResetOptimizer();
        }

        /// <summary>Trains every parameter again; the optimizer's moments start afresh.</summary>
        public void UnfreezeBase()
        {
            BaseFrozen = false;
            ResetOptimizer();
        }

        /// <summary>The elements the optimizer updates: [0, TrainableCount).</summary>
        public long TrainableCount => BaseFrozen ? AdapterCount : Count;

        public ArrayView<float> Values => values.View.SubView(0, Count);

        public ArrayView<float> Gradients => gradients.View.SubView(0, Count);

        public ArrayView<float> FirstMoments => m.View.SubView(0, Count);

        public ArrayView<float> SecondMoments => v.View.SubView(0, Count);

        /// <summary>
        /// The parameter named <paramref name="template"/> ("transformer.h.{layer}.ln_1.weight") in <paramref name="layer"/>;
        /// for a per-expert name ("model.layers.{layer}.block_sparse_moe.experts.{expert}.w1.weight") all the layer's experts, in order.
        /// </summary>
        public ArrayView<float> Weight(string template, int layer = 0) => Slice(values, BlockOf(template, layer));

        /// <summary>Its gradient.</summary>
        public ArrayView<float> Gradient(string template, int layer = 0) => Slice(gradients, BlockOf(template, layer));

        public bool Contains(string name) => byName.ContainsKey(name);

        public ParameterSlot Slot(string name) => byName.TryGetValue(name, out var slot) ? slot
            : throw new KeyNotFoundException($"Model '{ModelName}' has no parameter '{name}'.");

        private (long Offset, long Length) BlockOf(string template, int layer)
        {
            if (!byTemplate.TryGetValue(template, out var blocks))
                throw new KeyNotFoundException($"Model '{ModelName}' has no parameter '{template}'.");
            if ((uint)layer >= (uint)blocks.Length || blocks[layer] is not { } block)
                throw new ArgumentOutOfRangeException(nameof(layer), layer, $"Model '{ModelName}': layer {layer} holds no '{template}'.");
            return block;
        }

        private static ArrayView<float> Slice(MemoryBuffer1D<float, Stride1D.Dense> buffer, (long Offset, long Length) block)
            => buffer.View.SubView(block.Offset, block.Length);

        private static ArrayView<float> Slice(MemoryBuffer1D<float, Stride1D.Dense> buffer, ParameterSlot slot)
            => buffer.View.SubView(slot.Offset, slot.Length);

        /// <summary>Zeroes the gradients (a step's backward pass accumulates into them).</summary>
        public void ZeroGradients() => gradients.MemSetToZero();

        /// <summary>Zeroes AdamW's moments (a fresh optimizer).</summary>
        public void ResetOptimizer()
        {
            m.MemSetToZero();
            v.MemSetToZero();
        }

        /// <summary>A parameter's values, copied to the host.</summary>
        public float[] Get(string name) => CopyOut(values, Slot(name));

        /// <summary>A parameter's gradient, copied to the host.</summary>
        public float[] GetGradient(string name) => CopyOut(gradients, Slot(name));

        /// <summary>Overwrites a parameter; <paramref name="data"/> must have exactly its element count.</summary>
        public void Set(string name, ReadOnlySpan<float> data)
        {
            var slot = Slot(name);
            if (data.Length != slot.Length)
                throw new ArgumentException($"Model '{ModelName}': '{name}' {SafetensorsHeader.FormatShape(slot.Shape)} has {slot.Length} elements, not {data.Length}.", nameof(data));
            Slice(values, slot).CopyFromCPU(data.ToArray());
        }

        private static float[] CopyOut(MemoryBuffer1D<float, Stride1D.Dense> buffer, ParameterSlot slot)
        {
            var result = new float[slot.Length];
            Slice(buffer, slot).CopyToCPU(result);
            return result;
        }

        /// <summary>All parameter values on the host, by checkpoint name.</summary>
        public IReadOnlyDictionary<string, float[]> ToHost()
        {
            var all = new float[Count];
            Values.CopyToCPU(all);
            return Slots.ToDictionary(s => s.Name, s => all.AsSpan((int)s.Offset, (int)s.Length).ToArray(), StringComparer.Ordinal);
        }

        /// <summary>Writes every parameter into <paramref name="path"/> as F32 safetensors, atomically.</summary>
        public void Save(string path, IReadOnlyDictionary<string, string>? metadata = null)
        {
            var all = new float[Count];
            Values.CopyToCPU(all);
            SafetensorsFile.Write(path, Slots.Select(s => SafetensorsWriteEntry.FromBytes(s.Name, "F32", s.Shape,
                MemoryMarshal.AsBytes(all.AsSpan((int)s.Offset, (int)s.Length)).ToArray())), metadata);
        }

        /// <summary>
        /// Loads a safetensors file, all or nothing, with the TorchSharp backend's rules: <paramref name="mapName"/> maps a
        /// checkpoint name to a parameter name or null to skip it; a tensor of <paramref name="tiedCopies"/> is not loaded
        /// but must equal the parameter it copies; every parameter must be filled, no tensor may be left unmatched, and
        /// shapes must agree. Floating dtypes (F32, F64, F16, BF16) are converted to float32. On any problem one
        /// <see cref="SafetensorsException"/> lists them all and no parameter changes.
        /// </summary>
        public void Load(string path, Func<string, string?>? mapName = null, IReadOnlyDictionary<string, string>? tiedCopies = null)
        {
            string file = Path.GetFileName(path);
            using var stream = SafetensorsFile.OpenRead(path);
            var header = SafetensorsFile.ReadHeader(stream, path);
            var problems = new List<string>();
            var assignments = new List<(SafetensorsTensorInfo Info, ParameterSlot Slot)>();
            var copies = new List<(SafetensorsTensorInfo Info, ParameterSlot Slot)>();
            var filled = new HashSet<string>(StringComparer.Ordinal);
            foreach (var info in header.Tensors.Values.OrderBy(i => i.Name, StringComparer.Ordinal))
            {
                bool isCopy = tiedCopies is not null && tiedCopies.ContainsKey(info.Name);
                string? name = isCopy ? tiedCopies![info.Name] : mapName is null ? info.Name : mapName(info.Name);
                if (name is null) continue;
                if (!byName.TryGetValue(name, out var slot))
                {
                    problems.Add($"tensor '{info.Name}' in {file} matches no parameter of the model");
                    continue;
                }
                if (!SafetensorsFile.GetDType(info.DType).IsFloating || info.DType is not ("F32" or "F64" or "F16" or "BF16"))
                    problems.Add($"tensor '{info.Name}' in {file} has dtype {info.DType}, which cannot be converted to float32");
                else if (!info.Shape.SequenceEqual(slot.Shape))
                    problems.Add($"tensor '{info.Name}' in {file} has shape {info.ShapeText}; the model expects {SafetensorsHeader.FormatShape(slot.Shape)}");
                else if (isCopy)
                    copies.Add((info, slot));
                else if (!filled.Add(slot.Name))
                    problems.Add($"tensor '{info.Name}' in {file} fills '{slot.Name}' a second time");
                else
                    assignments.Add((info, slot));
            }
            var missing = Slots.Where(s => !filled.Contains(s.Name)).Select(s => $"'{s.Name}'").ToList();
            if (missing.Count > 0)
                problems.Insert(0, $"{missing.Count} parameter(s) are missing from {file}: {string.Join(", ", missing)}");
            if (problems.Count == 0)
                SafetensorsFile.CheckFitsInMemory(header, assignments.Concat(copies).Select(a => a.Info));

            // Read everything before anything is written: a failed read leaves the model as it was.
            var staged = new Dictionary<string, float[]>(StringComparer.Ordinal);
            if (problems.Count == 0)
            {
                foreach (var (info, slot) in assignments) staged[slot.Name] = Read(stream, header, info);
                foreach (var (info, slot) in copies)
                {
                    var copy = Read(stream, header, info);
                    var original = staged[slot.Name];
                    int differing = 0;
                    for (int i = 0; i < copy.Length; i++)
                        if (copy[i] != original[i] && !(float.IsNaN(copy[i]) && float.IsNaN(original[i]))) differing++;
                    if (differing > 0)
                        problems.Add($"tensor '{info.Name}' in {file} differs from '{slot.Name}' in {differing} of {copy.Length} elements: the checkpoint is untied, but the model ties them");
                }
                SafetensorsFile.CheckUnchanged(stream, header);
            }
            if (problems.Count > 0)
                throw new SafetensorsException(path, null, $"Model '{ModelName}': " + string.Join(Environment.NewLine + $"Model '{ModelName}': ", problems));
            foreach (var (name, data) in staged) Slice(values, byName[name]).CopyFromCPU(data);
        }

        private static float[] Read(Stream stream, SafetensorsHeader header, SafetensorsTensorInfo info)
        {
            var bytes = new byte[info.ByteLength];
            SafetensorsFile.ReadTensorData(stream, header, info, 0, bytes);
            var result = new float[info.ElementCount];
            switch (info.DType)
            {
                case "F32": MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result); break;
                case "F64":
                    var doubles = MemoryMarshal.Cast<byte, double>(bytes);
                    for (int i = 0; i < result.Length; i++) result[i] = (float)doubles[i];
                    break;
                case "F16":
                    var halves = MemoryMarshal.Cast<byte, System.Half>(bytes);
                    for (int i = 0; i < result.Length; i++) result[i] = (float)halves[i];
                    break;
                default: // BF16: the upper half of a float32
                    var raw = MemoryMarshal.Cast<byte, ushort>(bytes);
                    for (int i = 0; i < result.Length; i++) result[i] = BitConverter.Int32BitsToSingle(raw[i] << 16);
                    break;
            }
            return result;
        }

        public void Dispose()
        {
            values.Dispose();
            gradients.Dispose();
            m.Dispose();
            v.Dispose();
        }
    }
}
