using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis.CSharp;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Layouts;

namespace ModelDsl.Generators.Emit.TorchSharp
{
    /// <summary>
    /// The TorchSharp module tree that gives every parameter its Hugging Face name: built from the parameters' paths
    /// alone, so the names are the layout's and nowhere else. Containers become nested classes named after Hugging
    /// Face's (from the layout), "{layer}" and "{expert}" become ModuleLists, leaves are TorchSharp or runtime modules.
    /// A module that only some layers have (T5's relative bias in block 0, the experts of Switch-style layers) is an
    /// optional field, null in the other layers (TorchSharp registers no null field).
    /// </summary>
    internal sealed class ModuleTree
    {
        private readonly ModelGraph graph;
        private readonly Dictionary<int, ModuleNode> byParameter = new();

        public ModuleTree(ModelGraph graph, IEnumerable<Parameter> parametersInUseOrder)
        {
            this.graph = graph;
            Root = new ModuleNode("", "", null);
            var lists = new HashSet<string>(graph.Parameters.SelectMany(p => ListPrefixes(p.ModulePath)));
            foreach (var parameter in parametersInUseOrder) Insert(parameter, lists);
            Resolve(Root, null);
            NameClasses();
        }

        /// <summary>The model itself: its children are the model class's fields.</summary>
        public ModuleNode Root { get; }

        /// <summary>The node holding a parameter.</summary>
        public ModuleNode NodeOf(Parameter parameter) => byParameter[parameter.Id];

        /// <summary>One node per generated class, in first-use order.</summary>
        public IEnumerable<ModuleNode> Classes()
            => Root.Descendants().Where(n => n.Category == ModuleCategory.Container).GroupBy(n => n.ClassName).Select(g => g.First());

        private static IEnumerable<string> ListPrefixes(string path)
        {
            var segments = path.Split('.');
            for (int i = 1; i < segments.Length; i++)
                if (segments[i] == CheckpointLayout.LayerIndex) yield return string.Join(".", segments.Take(i));
        }

        private void Insert(Parameter parameter, HashSet<string> lists)
        {
            var segments = parameter.ModulePath.Length == 0 ? Array.Empty<string>() : parameter.ModulePath.Split('.');
            IEnumerable<int>? presence = parameter.Layers.Count > 0 ? parameter.Layers : null;
            string? stack = parameter.Stack;
            var node = Root;
            foreach (var (raw, i) in segments.Select((s, i) => (s, i)))
            {
                string segment = raw;
                // "h.0" beside "h.{layer}": a module that only layer 0 has.
                if (int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out int literal)
                    && lists.Contains(string.Join(".", segments.Take(i))))
                {
                    segment = CheckpointLayout.LayerIndex;
                    presence = new[] { literal };
                    stack = graph.Parameters.First(p => p.Stack is not null && p.ModulePath.StartsWith(string.Join(".", segments.Take(i)) + ".", StringComparison.Ordinal)).Stack;
                }
                node = node.Child(segment);
                if (segment == CheckpointLayout.LayerIndex) node.Stack ??= stack;
                if (presence is null) node.Everywhere = true;
                else node.Presence.UnionWith(presence);
            }
            node.Parameters.Add(parameter);
            byParameter[parameter.Id] = node;
        }

        private void Resolve(ModuleNode node, int? layers)
        {
            if (node.Segment == CheckpointLayout.LayerIndex) layers = graph.Stack(node.Stack!).Layers;
            var kinds = node.Parameters.Select(p => p.Module).Distinct().ToList();
            node.Kind = kinds.Count == 1 ? kinds[0] : ModuleKind.Container;
            bool adapted = node.Kind is ModuleKind.Linear or ModuleKind.Conv1D && node.Children.Count > 0
                           && node.Children.All(c => c.Segment is "lora_A" or "lora_B");
            node.Category = node.Parent is null ? ModuleCategory.Model
                : node.Children.Count == 1 && node.Children[0].IsIndex ? ModuleCategory.List
                : node.IsIndex || node.Kind == ModuleKind.Container || node.Children.Count > 0 && !adapted ? ModuleCategory.Container
                : adapted ? ModuleCategory.AdaptedLeaf
                : ModuleCategory.Leaf;
            // Optional: present in fewer layers than its parent (which, below a list element, is in all of them). An
            // expert's modules are in every layer its expert list is in: they compare with the list, above "{expert}".
            if (layers is int count && !node.IsIndex && !node.Everywhere && node.Presence.Count < count)
            {
                var parent = node.Parent!.Segment == CheckpointLayout.ExpertIndex ? node.Parent.Parent! : node.Parent!;
                bool parentNarrower = !parent.IsIndex && !parent.Everywhere && parent.Presence.SetEquals(node.Presence);
                node.IsOptional = !parentNarrower;
            }
            foreach (var child in node.Children) Resolve(child, layers);
        }

        /// <summary>Containers get the layout's class names; two structures under one name get their root segment as a prefix.</summary>
        private void NameClasses()
        {
            var infos = graph.Containers.ToDictionary(c => c.Path, c => c.ClassName);
            var containers = Root.Descendants().Where(n => n.Category == ModuleCategory.Container).ToList();
            foreach (var node in containers)
                node.ClassName = infos.TryGetValue(node.Path, out var name) ? name : Pascal(node.Segment.Trim('{', '}')) + "Module";
            // One class per structure: where the layout's name covers two structures, the root segment ("Encoder",
            // "Decoder") tells them apart, and failing that a number does.
            foreach (var group in containers.GroupBy(n => n.ClassName).ToList())
            {
                var shapes = group.GroupBy(n => n.Signature()).ToList();
                if (shapes.Count < 2) continue;
                foreach (var shape in shapes)
                {
                    var roots = shape.Select(n => n.Path.Split('.')[0]).Distinct().ToList();
                    string prefix = roots.Count == 1 ? Pascal(roots[0]) : "";
                    foreach (var node in shape) node.ClassName = prefix + node.ClassName;
                }
                var renamed = group.GroupBy(n => n.ClassName).Where(g => g.Select(n => n.Signature()).Distinct().Count() > 1);
                foreach (var clash in renamed.ToList())
                {
                    int i = 0;
                    foreach (var shape in clash.GroupBy(n => n.Signature()).ToList())
                    {
                        i++;
                        foreach (var node in shape) node.ClassName += i.ToString(CultureInfo.InvariantCulture);
                    }
                }
            }
        }

        internal static string Pascal(string segment)
            => string.Concat(segment.Split('_').Where(p => p.Length > 0).Select(p => char.ToUpperInvariant(p[0]) + p.Substring(1)));
    }

    internal enum ModuleCategory
    {
        /// <summary>The generated model class.</summary>
        Model,
        /// <summary>A generated nested class holding other modules.</summary>
        Container,
        /// <summary>A ModuleList over "{layer}" or "{expert}".</summary>
        List,
        /// <summary>A TorchSharp or runtime module (Linear, LayerNorm, Embedding, ...).</summary>
        Leaf,
        /// <summary>A runtime linear module carrying LoRA adapters (lora_A, lora_B).</summary>
        AdaptedLeaf,
    }

    /// <summary>One module of the tree.</summary>
    internal sealed class ModuleNode
    {
        public ModuleNode(string segment, string path, ModuleNode? parent)
        {
            Segment = segment;
            Path = path;
            Parent = parent;
        }

        /// <summary>The path segment ("attn", "{layer}", "c_attn").</summary>
        public string Segment { get; }

        /// <summary>The module path with placeholders ("transformer.h.{layer}.attn").</summary>
        public string Path { get; }

        public ModuleNode? Parent { get; }

        public List<ModuleNode> Children { get; } = new();

        public List<Parameter> Parameters { get; } = new();

        /// <summary>The layers that have this module, when its parameters are per layer.</summary>
        public SortedSet<int> Presence { get; } = new();

        /// <summary>Whether some parameter below is not per layer (so the module exists whatever the layer).</summary>
        public bool Everywhere { get; set; }

        /// <summary>For a "{layer}" element: the stack it indexes.</summary>
        public string? Stack { get; set; }

        public ModuleKind Kind { get; set; }

        public ModuleCategory Category { get; set; }

        /// <summary>Present in only some of its stack's layers (a nullable field).</summary>
        public bool IsOptional { get; set; }

        public bool IsIndex => Segment is CheckpointLayout.LayerIndex or CheckpointLayout.ExpertIndex;

        public string ClassName { get; set; } = "";

        public ModuleNode Child(string segment)
        {
            var child = Children.FirstOrDefault(c => c.Segment == segment);
            if (child is null)
            {
                child = new ModuleNode(segment, Path.Length == 0 ? segment : Path + "." + segment, this);
                Children.Add(child);
            }
            return child;
        }

        public IEnumerable<ModuleNode> Descendants()
        {
            foreach (var child in Children)
            {
                yield return child;
                foreach (var d in child.Descendants()) yield return d;
            }
        }

        /// <summary>The C# field name: the segment when it is an identifier (escaped if a keyword), else the child's class name.</summary>
        public string FieldName
            => !SyntaxFacts.IsValidIdentifier(Segment) ? (ClassName.Length > 0 ? ClassName : "Item" + Segment)
               : SyntaxFacts.GetKeywordKind(Segment) != SyntaxKind.None || SyntaxFacts.GetContextualKeywordKind(Segment) is SyntaxKind.VarKeyword
                   ? "@" + Segment : Segment;

        /// <summary>Whether the field name is not the checkpoint name (then [ComponentName] gives it back).</summary>
        public bool NeedsComponentName => FieldName.TrimStart('@') != Segment;

        /// <summary>A structural description: two containers with equal signatures can share a class.</summary>
        public string Signature()
            => Kind + "(" + string.Join(",", Parameters.Select(p => p.Name + Ir.Shape.Format(p.Shape))) + ")"
               + (IsOptional ? "?" + string.Join("/", Presence) : "")
               + "{" + string.Join(";", Children.Select(c => c.Segment + ":" + c.Signature())) + "}";
    }
}
