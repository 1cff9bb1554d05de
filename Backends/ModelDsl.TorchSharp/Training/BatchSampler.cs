using System;
using ModelDsl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>
    /// Seeded language-model batches as TorchSharp tensors: the backend-neutral <see cref="TokenWindowSampler"/>
    /// fills the int64 arrays, and this turns them into tensors on a device. See <see cref="TokenBatchesExtensions.Sampler"/>.
    /// </summary>
    public sealed class BatchSampler
    {
        private readonly TokenWindowSampler windows;
        private readonly long[] ids;
        private readonly long[] targets;
        private readonly long[] shape;
        private readonly Device? device;

        internal BatchSampler(TokenWindowSampler windows, Device? device)
        {
            this.windows = windows;
            this.device = device;
            ids = new long[windows.BatchElements];
            targets = new long[ids.Length];
            shape = new long[] { windows.BatchSize, windows.SequenceLength };
        }

        /// <summary>Rows per batch (B).</summary>
        public int BatchSize => windows.BatchSize;

        /// <summary>Tokens per row (T).</summary>
        public int SequenceLength => windows.SequenceLength;

        /// <summary>Distinct window start positions in the split.</summary>
        public int Windows => windows.Windows;

        /// <summary>The window generator's state (for resuming training exactly).</summary>
        public ulong State
        {
            get => windows.State;
            set => windows.State = value;
        }

        /// <summary>Start positions of the next <see cref="BatchSize"/> windows, advancing the stream (for inspection and tests).</summary>
        public int[] NextStarts() => windows.NextStarts();

        /// <summary>
        /// The next batch: ids [B, T] and targets [B, T] (int64), targets[b, t] = ids[b, t + 1] of the same window,
        /// the last target being the token after the window. The tensors join the current dispose scope.
        /// </summary>
        public (Tensor Ids, Tensor Targets) Next()
        {
            windows.Next(ids, targets);
            var x = torch.tensor(ids, shape);
            var y = torch.tensor(targets, shape);
            if (device is not null && device.type != DeviceType.CPU)
            {
                x = x.to(device);
                y = y.to(device);
            }
            return (x, y);
        }
    }
}
