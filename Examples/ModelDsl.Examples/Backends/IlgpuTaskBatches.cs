using System;
using System.Linq;
using ModelDsl.Ilgpu;
using ModelDsl.Ilgpu.Training;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;

namespace ModelDsl.Examples.Backends
{
    /// <summary>
    /// A TorchSharp task's data (seeded streams of tensor batches) as the ILGPU trainer's host batches: drawn with the
    /// seeds the TorchSharp trainer uses, so both backends train on the same batches, and copied to arrays for the
    /// generated ILGPU model, which <paramref name="forwardBackward"/> and <paramref name="loss"/> call.
    /// </summary>
    internal sealed class IlgpuTaskBatches<TBatch>(ITaskData<TBatch> data, TrainingOptions options, Func<TBatch, float> forwardBackward, Func<TBatch, float> loss)
        : IIlgpuBatchSource
    {
        private readonly IBatchStream<TBatch> train = data.Stream(DataSplit.Train, options, options.Seed, device: null);

        public string ItemName => data.ItemName;

        public long TrainItems => data.Items(DataSplit.Train);

        public long ValidationItems => data.Items(DataSplit.Validation);

        public long ItemsPerBatch => train.ItemsPerBatch;

        public bool CanValidate => data.CanStream(DataSplit.Validation, options);

        public float ForwardBackwardNext()
        {
            using var scope = torch.NewDisposeScope();
            return forwardBackward(train.Next());
        }

        public double ValidationLoss(int batches, ulong seed)
        {
            using var scope = torch.NewDisposeScope();
            var stream = data.Stream(DataSplit.Validation, options, seed, device: null);
            double sum = 0;
            for (int i = 0; i < batches; i++) sum += loss(stream.Next());
            return sum / batches;
        }
    }

    /// <summary>Tensor to host-array copies for the ILGPU models' spans.</summary>
    internal static class HostArrays
    {
        public static int[] Ints(torch.Tensor t) => t.to_type(torch.ScalarType.Int64).cpu().data<long>().Select(v => checked((int)v)).ToArray();

        public static float[] Floats(torch.Tensor t) => t.to_type(torch.ScalarType.Float32).cpu().contiguous().data<float>().ToArray();

        public static bool[] Bools(torch.Tensor t) => t.to_type(torch.ScalarType.Bool).cpu().data<bool>().ToArray();
    }

    /// <summary>A job's training run on the backend its --backend option chose.</summary>
    internal static class TaskTraining
    {
        /// <summary>
        /// Trains <paramref name="model"/> with the TorchSharp trainer when <paramref name="device"/> is null. Otherwise
        /// moves its weights (fresh or pre-trained) to the ILGPU model <paramref name="createIlgpu"/> makes, through
        /// <paramref name="weightsFile"/>, trains there with the same recipe on the batches the TorchSharp trainer would
        /// draw (<paramref name="run"/> calls the ILGPU model on one batch: forward and backward when its flag is true,
        /// the loss alone otherwise) and moves the trained weights back, so the job evaluates and saves them as on TorchSharp.
        /// </summary>
        public static TrainingReport Train<TBatch, TIlgpu>(IlgpuDevice? device, TaskModel<TBatch> model, TrainingOptions options, ITaskData<TBatch> data,
            Func<IlgpuDevice, TIlgpu> createIlgpu, Func<TIlgpu, TBatch, bool, float> run, string weightsFile)
            where TIlgpu : IlgpuTransformerModel
        {
            if (device is null)
            {
                using var trainer = new ModelTrainer<TBatch>(model, options);
                return new ConsoleTrainingView().Run(observer => trainer.Train(data, observer));
            }
            using var ilgpu = IlgpuTwin.Create(model, () => createIlgpu(device), weightsFile);
            var ilgpuTrainer = new IlgpuTrainer(ilgpu, options);
            var batches = new IlgpuTaskBatches<TBatch>(data, options, b => run(ilgpu, b, true), b => run(ilgpu, b, false));
            var report = new ConsoleTrainingView().Run(observer => ilgpuTrainer.Train(batches, observer));
            IlgpuTwin.CopyBack(ilgpu, model, weightsFile);
            return report;
        }
    }
}
