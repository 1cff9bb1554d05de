using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;
using ModelDsl.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>Loads and saves a module's parameters (and persistent buffers) as safetensors.</summary>
    public static class ModuleWeights
    {
        /// <summary>
        /// Test hook: called with the path after the header has been read and checked against the module, before any
        /// tensor data is read, so a test can change the file in between (as another program writing it would).
        /// </summary>
        internal static readonly AsyncLocal<Action<string>?> BeforeDataRead = new();

        /// <summary>
        /// Loads the safetensors file at <paramref name="path"/> into <paramref name="module"/>'s parameters and
        /// persistent buffers. <paramref name="mapName"/> maps a checkpoint name to a parameter name, or returns null to
        /// skip the tensor (default: names are used as they are). Everything is validated before anything is copied: on
        /// any problem the module is left unchanged and one <see cref="SafetensorsException"/> lists every missing,
        /// unexpected, mis-shaped or unconvertible tensor. The load is all-or-nothing for the data too: every tensor is
        /// first read into a fresh CPU tensor of its stored dtype, and the parameters are overwritten only after all
        /// reads succeeded and the file still has the size its header was read with (a file truncated or rewritten by
        /// another program during the load, or an I/O error, leaves the module unchanged). So a load needs memory for the
        /// module plus one copy of the tensors it reads; more than <see cref="SafetensorsFile.MemoryLimitBytes"/> is
        /// refused before anything is allocated. Values are then copied under no_grad with copy_, which converts
        /// the dtype and moves them to the parameter's device. Parameters that share one tensor (tied weights) need it
        /// in the file under one of their names only.
        /// <para>
        /// <paramref name="tiedCopies"/> maps a checkpoint tensor name to the parameter it must equal, for a model that
        /// ties two weights into one parameter where checkpoints may store both (GPT-2 with [TiedEmbeddings]:
        /// "lm_head.weight" -> "transformer.wte.weight"). Such a tensor, when the file has it, is not loaded (and not passed
        /// to <paramref name="mapName"/>); it is read and compared, after conversion to the parameter's dtype, with the value
        /// the parameter gets from the same file, and must be equal element for element (NaN matches NaN). Otherwise the
        /// checkpoint is untied and loading it would silently drop one of its weights, so the load fails, naming both
        /// tensors, and the module is unchanged. (A file lacking the parameter itself already fails as "missing".)
        /// </para>
        /// <para>
        /// <paramref name="mayKeep"/> names parameters the file may lack, which then keep their current values (a task
        /// head when a base-model checkpoint is loaded); a tied group may be missing only when all its names may be kept.
        /// Returns the names of the parameters and buffers the file did not fill (empty without <paramref name="mayKeep"/>).
        /// </para>
        /// </summary>
        /// <exception cref="SafetensorsException">The file is invalid or does not match the model (including an untied copy).</exception>
        /// <exception cref="ArgumentException"><paramref name="tiedCopies"/> names a parameter the module does not have.</exception>
        public static IReadOnlyList<string> Load(nn.Module module, string path, string modelName, Func<string, string?>? mapName = null,
            IReadOnlyDictionary<string, string>? tiedCopies = null, Func<string, bool>? mayKeep = null)
            => Load(module, path, modelName, mapName, tiedCopies, mayKeep, partial: false).Missing;

        /// <summary>
        /// Loads the tensors of <paramref name="path"/> that match a parameter of <paramref name="module"/> by name and
        /// leaves the rest as they are, as Hugging Face's from_pretrained does when a checkpoint's head differs from the
        /// model's (an MLM checkpoint into a classifier: the encoder loads, the new head keeps its initialisation). Returns
        /// what was loaded, which parameters the file lacks and which of its tensors the model does not use. Everything
        /// else is as strict as <see cref="Load(nn.Module, string, string, Func{string, string?}?, IReadOnlyDictionary{string, string}?, Func{string, bool}?)"/>:
        /// a matching name with another shape or an unconvertible dtype, two tensors for one parameter, an untied copy of a
        /// tied parameter, or a file that matches no parameter at all (surely the wrong file) fails, naming the tensors,
        /// and leaves the module unchanged.
        /// </summary>
        /// <exception cref="SafetensorsException">The file is invalid, a matching tensor does not fit, or nothing matches.</exception>
        public static PretrainedLoad LoadMatching(nn.Module module, string path, string modelName, Func<string, string?>? mapName = null,
            IReadOnlyDictionary<string, string>? tiedCopies = null)
            => Load(module, path, modelName, mapName, tiedCopies, mayKeep: null, partial: true);

        private static PretrainedLoad Load(nn.Module module, string path, string modelName, Func<string, string?>? mapName,
            IReadOnlyDictionary<string, string>? tiedCopies, Func<string, bool>? mayKeep, bool partial)
        {
            ArgumentNullException.ThrowIfNull(module);
            ArgumentNullException.ThrowIfNull(path);
            ArgumentNullException.ThrowIfNull(modelName);
            TorchSharpRuntime.EnsureLoaded();
            string file = Path.GetFileName(path);

            var targets = Targets(module);
            var byName = new Dictionary<string, Target>(StringComparer.Ordinal);
            foreach (var t in targets) byName[t.Name] = t;
            if (tiedCopies is not null)
                foreach (var (copy, parameter) in tiedCopies)
                    if (copy is null || parameter is null || !byName.ContainsKey(parameter))
                        throw new ArgumentException(
                            $"tiedCopies maps checkpoint tensor '{copy}' to '{parameter}', which is no parameter or persistent buffer of model '{modelName}'.",
                            nameof(tiedCopies));

            using var stream = SafetensorsFile.OpenRead(path);
            SafetensorsHeader header;
            try
            {
                header = SafetensorsFile.ReadHeader(stream, path);
            }
            catch (SafetensorsException e)
            {
                throw new SafetensorsException(path, e.TensorName, $"Model '{modelName}': {e.Message}", e);
            }

            var problems = new List<string>();
            string? firstTensor = null;
            void Problem(string tensor, string text)
            {
                firstTensor ??= tensor;
                problems.Add($"Model '{modelName}': {text}");
            }

            var assignments = new List<(SafetensorsTensorInfo Info, Target Target)>();
            var copies = new List<(SafetensorsTensorInfo Info, Target Target)>(); // tied copies to compare, not to load
            var assignedGroups = new Dictionary<int, string>(); // group -> file tensor that fills it
            var unexpected = new List<string>();
            var unused = new List<string>(); // the file's names of the unexpected tensors
            foreach (var info in header.Tensors.Values)
            {
                if (tiedCopies is not null && tiedCopies.TryGetValue(info.Name, out var tiedTo))
                {
                    var tied = byName[tiedTo];
                    bool same = true;
                    if (!SameShape(info.Shape, tied.Shape))
                    {
                        Problem(info.Name, $"tensor '{info.Name}' in {file} has shape {info.ShapeText}; its tied parameter '{tiedTo}' has " +
                                           $"{SafetensorsHeader.FormatShape(tied.Shape)}, so the checkpoint is not tied as the model declares");
                        same = false;
                    }
                    if (!Convertible(info.DType, tied.DType))
                    {
                        Problem(info.Name, $"tensor '{info.Name}' in {file} has dtype {info.DType}, which cannot be converted to the model's {tied.DType}");
                        same = false;
                    }
                    if (same) copies.Add((info, tied));
                    continue;
                }

                string? mapped;
                try { mapped = mapName is null ? info.Name : mapName(info.Name); }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    throw new SafetensorsException(path, info.Name, $"Model '{modelName}': mapping the name of tensor '{info.Name}' in {file} failed: {e.Message}", e);
                }
                if (mapped is null) continue;
                if (!byName.TryGetValue(mapped, out var target))
                {
                    unexpected.Add(mapped == info.Name ? $"'{info.Name}'" : $"'{info.Name}' (as '{mapped}')");
                    unused.Add(info.Name);
                    if (!partial) firstTensor ??= info.Name;
                    continue;
                }
                string label = mapped == info.Name ? $"tensor '{info.Name}'" : $"tensor '{info.Name}' (parameter '{mapped}')";
                if (assignedGroups.TryGetValue(target.Group, out var other))
                {
                    Problem(info.Name, $"{label} in {file} fills the same parameter as tensor '{other}'" +
                                       (target.Aliases.Count > 1 ? $" (tied: {string.Join(", ", target.Aliases.Select(a => $"'{a}'"))})" : ""));
                    continue;
                }
                assignedGroups[target.Group] = info.Name;

                bool ok = true;
                if (!SameShape(info.Shape, target.Shape))
                {
                    Problem(info.Name, $"{label} in {file} has shape {info.ShapeText}; the model expects {SafetensorsHeader.FormatShape(target.Shape)} ({ShapeDifference(info.Shape, target.Shape)})");
                    ok = false;
                }
                if (!Convertible(info.DType, target.DType))
                {
                    Problem(info.Name, $"{label} in {file} has dtype {info.DType}, which cannot be converted to the model's {target.DType}");
                    ok = false;
                }
                if (ok) assignments.Add((info, target));
            }
            var absent = targets.Where(t => t.IsCanonical && !assignedGroups.ContainsKey(t.Group)).ToList();
            if (partial)
            {
                if (assignedGroups.Count == 0)
                    problems.Add($"Model '{modelName}': no tensor in {file} matches a parameter of the model, so nothing would be loaded " +
                        $"({header.Tensors.Count} tensor(s) in the file" +
                        (header.Tensors.Count > 0 ? $", for example {string.Join(", ", header.Tensors.Keys.Take(3).Select(n => $"'{n}'"))})" : ")"));
            }
            else
            {
                if (unexpected.Count > 0)
                    problems.Add($"Model '{modelName}': {unexpected.Count} tensor(s) in {file} match no parameter of the model: {string.Join(", ", unexpected)}");
                // A tied group may be missing only when all its names may be kept.
                var missing = absent.Where(t => mayKeep is null || !t.Aliases.All(mayKeep)).ToList();
                var described = missing.Select(t => t.Aliases.Count > 1 ? $"'{t.Name}' (tied: {string.Join(", ", t.Aliases.Select(a => $"'{a}'"))})" : $"'{t.Name}'").ToList();
                if (described.Count == 1)
                    problems.Insert(0, $"Model '{modelName}': {described[0]} is missing from {file}");
                else if (described.Count > 1)
                    problems.Insert(0, $"Model '{modelName}': {described.Count} parameters are missing from {file}: {string.Join(", ", described)}");
                if (missing.Count > 0)
                    firstTensor = missing[0].Name;
            }

            if (problems.Count > 0)
                throw new SafetensorsException(path, firstTensor, string.Join(Environment.NewLine, problems));

            try
            {
                SafetensorsFile.CheckFitsInMemory(header, assignments.Concat(copies).Select(a => a.Info));
            }
            catch (SafetensorsException e)
            {
                throw new SafetensorsException(path, e.TensorName, $"Model '{modelName}': {e.Message}", e);
            }
            BeforeDataRead.Value?.Invoke(path);

            // Read everything first, then copy: a read that fails half-way (the file is truncated or rewritten by another
            // program while we read it, an I/O error) must leave every parameter as it was.
            var staged = new List<(SafetensorsTensorInfo Info, Tensor Value, Target Target)>(assignments.Count);
            var stagedCopies = new List<(SafetensorsTensorInfo Info, Tensor Value, Target Target)>(copies.Count);
            try
            {
                try
                {
                    foreach (var (info, target) in assignments)
                        staged.Add((info, Safetensors.ReadTensor(stream, header, info), target));
                    foreach (var (info, target) in copies)
                        stagedCopies.Add((info, Safetensors.ReadTensor(stream, header, info), target));
                    SafetensorsFile.CheckUnchanged(stream, header);
                }
                catch (SafetensorsException e)
                {
                    throw new SafetensorsException(path, e.TensorName, $"Model '{modelName}': {e.Message}", e);
                }

                foreach (var (copyInfo, copy, target) in stagedCopies)
                {
                    // The value the tied parameter gets from this file (or, were it not in the file, the one it has).
                    var source = staged.FirstOrDefault(s => s.Target.Group == target.Group);
                    Tensor reference = source.Value ?? target.Tensor;
                    string referenceLabel = source.Info is null ? $"the model's current '{target.Name}'"
                        : source.Info.Name == target.Name ? $"tensor '{target.Name}'"
                        : $"tensor '{source.Info.Name}' (parameter '{target.Name}')";
                    if (Difference(copy, reference, target.DType) is { } difference)
                        Problem(copyInfo.Name,
                            $"tensor '{copyInfo.Name}' in {file} differs from {referenceLabel} ({difference}): the checkpoint is untied, but the " +
                            $"model has one parameter for both ([TiedEmbeddings], or tied by the architecture, as T5's embed_tokens are) " +
                            $"and would use '{target.Name}' for both, ignoring '{copyInfo.Name}'");
                }
                if (problems.Count > 0)
                    throw new SafetensorsException(path, firstTensor, string.Join(Environment.NewLine, problems));

                using (torch.no_grad())
                {
                    foreach (var (_, value, target) in staged)
                        target.Tensor.copy_(value);
                }
                return new PretrainedLoad(staged.Select(s => s.Target.Name).ToList(), absent.Select(t => t.Name).ToList(), unused);
            }
            finally
            {
                foreach (var (_, value, _) in staged) value.Dispose();
                foreach (var (_, value, _) in stagedCopies) value.Dispose();
            }
        }

        /// <summary>
        /// Null when <paramref name="copy"/> equals <paramref name="reference"/> after both are converted to
        /// <paramref name="dtype"/> (NaN matches NaN); otherwise how many elements differ and the first difference.
        /// </summary>
        private static string? Difference(Tensor copy, Tensor reference, ScalarType dtype)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var a = copy.to(dtype, torch.CPU);
            var b = reference.detach().to(dtype, torch.CPU);
            var same = a.eq(b);
            if (IsFloating(dtype)) same = same.logical_or(a.isnan().logical_and(b.isnan()));
            var differs = same.logical_not().reshape(-1);
            long count = differs.sum().item<long>();
            if (count == 0) return null;
            long first = differs.to(ScalarType.Int64).argmax().item<long>(); // the first differing element
            var index = new long[a.dim()];
            for (long rest = first, d = index.Length - 1; d >= 0; d--)
            {
                index[d] = rest % a.shape[d];
                rest /= a.shape[d];
            }
            var flatA = a.reshape(-1);
            var flatB = b.reshape(-1);
            string Value(Tensor t) => IsFloating(dtype)
                ? t[first].to(ScalarType.Float64).item<double>().ToString("G9", System.Globalization.CultureInfo.InvariantCulture)
                : t[first].to(ScalarType.Int64).item<long>().ToString(System.Globalization.CultureInfo.InvariantCulture);
            return $"{count} of {a.numel()} elements, the first at {SafetensorsHeader.FormatShape(index)}: {Value(flatA)} vs {Value(flatB)}";
        }

        /// <summary>Whether copy_ may convert a file dtype into a parameter: floating into floating, bool into bool, integers into integers.</summary>
        private static bool Convertible(string fileDType, ScalarType target)
            => SafetensorsFile.GetDType(fileDType).IsFloating == IsFloating(target)
               && (target == ScalarType.Bool) == (fileDType == "BOOL");

        /// <summary>
        /// Saves <paramref name="module"/>'s parameters and persistent buffers to <paramref name="path"/>, atomically.
        /// Tensors shared by several names (tied weights) are saved once, under the first name. An interrupted save can
        /// leave a hidden temporary file beside <paramref name="path"/>, which the next save to it removes (see
        /// <see cref="SafetensorsFile.Write"/>). With <paramref name="include"/>, only the tensors whose names it accepts are saved.
        /// </summary>
        public static void Save(nn.Module module, string path, IReadOnlyDictionary<string, string>? metadata = null, Func<string, bool>? include = null)
        {
            ArgumentNullException.ThrowIfNull(module);
            ArgumentNullException.ThrowIfNull(path);
            TorchSharpRuntime.EnsureLoaded();
            var tensors = Targets(module).Where(t => t.IsCanonical && (include?.Invoke(t.Name) ?? true))
                                         .Select(t => new KeyValuePair<string, Tensor>(t.Name, t.Tensor))
                                         .ToList();
            Safetensors.Save(path, tensors, metadata);
        }

        private sealed class Target
        {
            public required string Name { get; init; }
            public required Tensor Tensor { get; init; }
            public required long[] Shape { get; init; }
            public required ScalarType DType { get; init; }
            public required int Group { get; init; }
            public required bool IsCanonical { get; init; }
            public required List<string> Aliases { get; init; }
        }

        /// <summary>Parameters, then persistent buffers, with tied tensors grouped (the first name is canonical).</summary>
        private static List<Target> Targets(nn.Module module)
        {
            var result = new List<Target>();
            var groups = new Dictionary<object, (int Group, List<string> Aliases)>();
            IEnumerable<(string, Tensor)> all = module.named_parameters().Select(p => (p.Item1, (Tensor)p.Item2))
                .Concat(module.named_buffers(recurse: true, include_nonpersistent: false));
            foreach (var (name, tensor) in all)
            {
                if (tensor is null) continue;
                object key = Identity(tensor);
                bool canonical = !groups.TryGetValue(key, out var group);
                if (canonical)
                {
                    group = (groups.Count, new List<string>());
                    groups[key] = group;
                }
                group.Aliases.Add(name);
                result.Add(new Target
                {
                    Name = name, Tensor = tensor, Shape = tensor.shape, DType = tensor.dtype,
                    Group = group.Group, IsCanonical = canonical, Aliases = group.Aliases,
                });
            }
            return result;
        }

        /// <summary>
        /// What makes two tensors "the same" for tying: for non-empty contiguous CPU tensors, their data address, dtype
        /// and shape (so distinct wrappers of one storage count as one); otherwise the wrapper object itself.
        /// </summary>
        private static object Identity(Tensor tensor)
        {
            if (tensor.numel() > 0 && tensor.device_type == DeviceType.CPU && tensor.is_contiguous()
                && tensor.numel() * tensor.element_size() <= int.MaxValue)
            {
                ref byte first = ref MemoryMarshal.GetReference(tensor.bytes);
                nint address = Unsafe.ByteOffset(ref Unsafe.NullRef<byte>(), ref first);
                return (address, tensor.dtype, string.Join(",", tensor.shape));
            }
            return tensor.Handle;
        }

        private static bool IsFloating(ScalarType type)
            => type is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

        private static bool SameShape(long[] a, long[] b) => a.AsSpan().SequenceEqual(b);

        private static string ShapeDifference(long[] file, long[] model)
        {
            if (file.Length != model.Length)
                return $"{file.Length} dimension(s) vs {model.Length}";
            for (int i = 0; i < file.Length; i++)
                if (file[i] != model[i])
                    return $"dimension {i}: {file[i]} vs {model[i]}";
            return "same";
        }
    }
}
