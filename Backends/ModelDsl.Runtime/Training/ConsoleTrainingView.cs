using System;
using System.Globalization;
using Spectre.Console;

namespace ModelDsl.Training
{
    /// <summary>
    /// Shows training in the console: a live Spectre.Console progress bar (step, smoothed loss, learning rate,
    /// tokens/s, ETA) on an interactive terminal; plain periodic lines when the output is redirected or the
    /// terminal is not interactive (CI logs), so logs stay readable. Evaluations are printed as lines in both modes.
    /// </summary>
    /// <example>
    /// <code>
    /// var view = new ConsoleTrainingView();
    /// var report = view.Run(observer => trainer.Train(data, observer));
    /// </code>
    /// </example>
    public sealed class ConsoleTrainingView : ITrainingObserver
    {
        private readonly IAnsiConsole console;
        private readonly bool live;
        private readonly TimeSpan lineInterval;
        private ProgressTask? task;
        private TimeSpan lastLine = TimeSpan.MinValue;
        private int totalSteps;
        private string unit = "tok";

        /// <summary>Creates a view on <paramref name="console"/> (default: <see cref="AnsiConsole.Console"/>).</summary>
        /// <param name="console">Where to write.</param>
        /// <param name="interactive">Force the live bar (true) or plain lines (false); null detects it.</param>
        /// <param name="lineInterval">In plain mode, the least time between two progress lines (default 10 s).</param>
        public ConsoleTrainingView(IAnsiConsole? console = null, bool? interactive = null, TimeSpan? lineInterval = null)
        {
            this.console = console ?? AnsiConsole.Console;
            live = interactive ?? (this.console.Profile.Capabilities.Interactive && !Console.IsOutputRedirected);
            // Redirected output (CI logs, files) has no width; Spectre then wraps at 80 columns mid-number.
            if (!live && Console.IsOutputRedirected) this.console.Profile.Width = Math.Max(this.console.Profile.Width, 200);
            this.lineInterval = lineInterval ?? TimeSpan.FromSeconds(10);
        }

        /// <summary>Whether the live progress bar is used.</summary>
        public bool IsLive => live;

        /// <summary>
        /// Runs <paramref name="train"/> with this view as its observer, inside a live progress display when
        /// interactive. Returns what <paramref name="train"/> returns.
        /// </summary>
        public T Run<T>(Func<ITrainingObserver, T> train)
        {
            ArgumentNullException.ThrowIfNull(train);
            if (!live) return train(this);
            return console.Progress()
                .AutoClear(false)
                .HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(),
                    new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                .Start(context =>
                {
                    task = context.AddTask("starting", autoStart: true, maxValue: Math.Max(1, totalSteps));
                    try { return train(this); }
                    finally { task = null; }
                });
        }

        void ITrainingObserver.OnStart(TrainingStart start)
        {
            totalSteps = start.Options.Steps;
            unit = start.ItemName == "tokens" ? "tok" : start.ItemName;
            if (task is not null) task.MaxValue = totalSteps;
            var o = start.Options;
            console.MarkupLine(string.Format(CultureInfo.InvariantCulture,
                "[bold]{0}[/]: {1:N0} parameters ({2:N0} with weight decay), {3:N0} train / {4:N0} validation {5}",
                Markup.Escape(start.ModelName), start.ParameterCount, start.DecayedParameterCount, start.TrainItems, start.ValidationItems, Markup.Escape(start.ItemName)));
            string batch = start.ItemName == "tokens"
                ? string.Format(CultureInfo.InvariantCulture, "{0} x {1} tokens", o.BatchSize, o.SequenceLength)
                : string.Format(CultureInfo.InvariantCulture, "{0} {1}", o.BatchSize, start.ItemName);
            console.MarkupLine(Markup.Escape(string.Format(CultureInfo.InvariantCulture,
                "{0} steps x {1}, lr {2:G3} (warm-up {3}, cosine to {4:G3}), AdamW betas ({5}, {6}), wd {7}, clip {8}",
                o.Steps, batch, o.LearningRate, o.WarmupSteps, o.LearningRate * o.MinLearningRateRatio,
                o.Beta1, o.Beta2, o.WeightDecay, o.GradClipNorm > 0 ? o.GradClipNorm.ToString(CultureInfo.InvariantCulture) : "off")));
        }

        void ITrainingObserver.OnStep(TrainingProgress p)
        {
            string text = string.Format(CultureInfo.InvariantCulture,
                "step {0,6}/{1}  loss {2:F4}  lr {3:0.00e+0}  {4,7} {6}/s  ETA {5}",
                p.StepsDone, p.TotalSteps, p.SmoothedLoss, p.LearningRate, Rate(p.ItemsPerSecond), Format(p.Remaining), unit);
            if (task is not null)
            {
                task.Description = Markup.Escape(text);
                task.Value = p.StepsDone;
                return;
            }
            if (p.StepsDone == p.TotalSteps || p.Step == 0 || p.Elapsed - lastLine >= lineInterval)
            {
                lastLine = p.Elapsed;
                console.WriteLine(text + string.Format(CultureInfo.InvariantCulture, "  |g| {0:F2}  elapsed {1}", p.GradNorm, Format(p.Elapsed)));
            }
        }

        void ITrainingObserver.OnEvaluation(EvaluationPoint e)
        {
            // Bits and perplexity describe a language model's tokens, not a classifier's labels.
            console.MarkupLine(string.Format(CultureInfo.InvariantCulture,
                unit == "tok" ? "[blue]eval[/] step {0,6}: validation loss [bold]{1:F4}[/] nats ({2:F3} bits, perplexity {3:F2})"
                              : "[blue]eval[/] step {0,6}: validation loss [bold]{1:F4}[/] nats",
                e.Step, e.Loss, e.Loss / Math.Log(2), Math.Exp(e.Loss)));
        }

        void ITrainingObserver.OnEnd(TrainingReport r)
        {
            console.MarkupLine(string.Format(CultureInfo.InvariantCulture,
                "[green]done[/]: {0:N0} steps in {1} ({2} {6}/s while training); final train loss {3:F4} (mean of last {5}), validation {4}",
                r.TrainLosses.Count, Format(r.Elapsed), Rate(r.ItemsPerSecond), r.MeanTrainLoss(),
                double.IsNaN(r.FinalValidationLoss) ? "n/a" : r.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture),
                Math.Min(50, r.TrainLosses.Count), r.ItemName));
        }

        /// <summary>A throughput with the digits that matter: 16,384, 42.5, 0.12 (an emulator's images per second is not 0).</summary>
        public static string Rate(double perSecond)
            => perSecond.ToString(perSecond >= 100 ? "N0" : perSecond >= 10 ? "F1" : "0.00", CultureInfo.InvariantCulture);

        private static string Format(TimeSpan t) =>
            t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : t.ToString(@"m\:ss", CultureInfo.InvariantCulture);
    }
}
