using System;
using ModelDsl.Ilgpu;
using ModelDsl.TorchSharp;

namespace ModelDsl.Examples.Backends
{
    /// <summary>
    /// A TorchSharp model's ILGPU twin, for a job trained with --backend ilgpu: weights move between the two through one
    /// safetensors file (Hugging Face names on both sides), which the caller names and keeps or deletes.
    /// </summary>
    internal static class IlgpuTwin
    {
        /// <summary>Creates the ILGPU model and gives it the TorchSharp model's weights.</summary>
        public static TIlgpu Create<TIlgpu>(TransformerModel model, Func<TIlgpu> create, string weightsFile) where TIlgpu : IlgpuTransformerModel
        {
            var ilgpu = create();
            model.SaveSafetensors(weightsFile);
            ilgpu.LoadSafetensors(weightsFile);
            return ilgpu;
        }

        /// <summary>Gives the TorchSharp model the ILGPU model's (trained) weights.</summary>
        public static void CopyBack(IlgpuTransformerModel ilgpu, TransformerModel model, string weightsFile)
        {
            ilgpu.SaveSafetensors(weightsFile);
            model.LoadSafetensors(weightsFile);
        }
    }
}
