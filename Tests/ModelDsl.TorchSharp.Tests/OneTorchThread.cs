using System;
using TorchSharp;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// Runs libtorch on one thread until disposed, then restores the thread count (it is process-wide). For test classes
    /// whose tensors are tiny: a second thread buys nothing there, and when other processes load the machine libtorch's
    /// threads wait for each other. Measured on the ViT tests with the load average at 30 on two cores: the finite-difference
    /// test took 13 s with both threads and TrainVit's run 47 images/s, against 795 images/s on one thread.
    /// </summary>
    internal sealed class OneTorchThread : IDisposable
    {
        private readonly int previous = torch.get_num_threads();

        public OneTorchThread() => torch.set_num_threads(1);

        public void Dispose() => torch.set_num_threads(previous);
    }
}
