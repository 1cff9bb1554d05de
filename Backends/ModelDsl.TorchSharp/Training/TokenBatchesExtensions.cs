using ModelDsl.Training;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>TorchSharp batches from a backend-neutral <see cref="TokenBatches"/> corpus.</summary>
    public static class TokenBatchesExtensions
    {
        /// <summary>
        /// A deterministic stream of batches from <paramref name="split"/> as tensors on <paramref name="device"/>
        /// (default CPU): the same seed gives the same windows on every platform and .NET version (the windows come
        /// from <see cref="TokenBatches.Windows"/>, SplitMix64).
        /// </summary>
        /// <exception cref="System.ArgumentException">The split is shorter than one window of <paramref name="sequenceLength"/> + 1 tokens.</exception>
        public static BatchSampler Sampler(this TokenBatches data, DataSplit split, int batchSize, int sequenceLength, ulong seed, Device? device = null)
        {
            System.ArgumentNullException.ThrowIfNull(data);
            return new BatchSampler(data.Windows(split, batchSize, sequenceLength, seed), device);
        }
    }
}
