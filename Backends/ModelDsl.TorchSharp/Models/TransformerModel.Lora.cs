using System;
using System.Collections.Generic;
using System.Linq;

namespace ModelDsl.TorchSharp
{
    public abstract partial class TransformerModel
    {
        /// <summary>
        /// The model's LoRA adapters ([Lora]), found in its module tree: freeze the base weights, save and load the
        /// adapters under PEFT's names, load the base weights alone, merge the adapters into them. A model without
        /// [Lora] has none (<see cref="LoraAdapters.Count"/> is 0, and the operations that need adapters say so).
        /// </summary>
        public LoraAdapters Lora => new(this);

        /// <summary>
        /// Loads a checkpoint with the layout's names in which the parameters named by <paramref name="mayBeMissing"/>
        /// may be absent; all or nothing, as <see cref="LoadSafetensors(string)"/>.
        /// </summary>
        internal void LoadSafetensors(string path, Func<string, bool> mayBeMissing)
        {
            var names = new HashSet<string>(named_parameters().Select(p => p.name).Concat(named_buffers().Select(b => b.name)), StringComparer.Ordinal);
            ModuleWeights.Load(this, path, Card.Name, name => CheckpointNames.Map(name, names.Contains), CheckpointNames.TiedCopies, mayBeMissing);
        }
    }
}
