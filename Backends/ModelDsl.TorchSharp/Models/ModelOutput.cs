using System.Collections.Generic;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// A forward pass's result: the logits, the weighted auxiliary loss that training adds to the task loss (the
    /// mixture-of-experts load-balancing loss; null for a dense model) and the tokens each expert received, by layer.
    /// </summary>
    public sealed record ModelOutput(Tensor Logits, Tensor? AuxiliaryLoss, IReadOnlyDictionary<int, Tensor> ExpertLoad);
}
