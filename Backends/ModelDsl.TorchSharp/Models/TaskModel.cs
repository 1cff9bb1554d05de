using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>A model of a task whose loss a trainer can minimise over the task's batches.</summary>
    public abstract class TaskModel<TBatch> : TransformerModel
    {
        protected TaskModel(ModelCard card) : base(card) { }

        /// <summary>The training loss of one batch: the task loss plus the weighted auxiliary loss, if any.</summary>
        public abstract Tensor Loss(TBatch batch);
    }
}
