using System;
using System.Globalization;
using System.IO;
using System.Linq;
using ModelDsl.Checkpoints;
using ModelDsl.Examples;
using ModelDsl.Examples.Jobs;
using ModelDsl.TorchSharp;

// The main job: train the declared KjvGpt on the King James Bible (embedded), save a checkpoint and a loss
// plot, and print a sample. Run with no arguments for the embedded default; `help` lists the other jobs.
return ExampleProgram.Run(args);

internal static class ExampleProgram
{
    /// <summary>Every job: its command, its usage lines and what runs it. A family's example is one entry.</summary>
    private static readonly (string Command, string Usage, Func<Options, int> Run)[] Jobs =
    {
        ("train", KjvGptJob.Usage, options => { KjvGptJob.Train(options); return 0; }),
        ("sample", "", options => { KjvGptJob.Sample(options); return 0; }),
        ("bert", KjvBertJob.Usage, options => { KjvBertJob.Run(options); return 0; }),
        ("t5", T5Job.Usage, T5Job.Run),
        ("vit", VitJob.Usage, options => { VitJob.Train(options); return 0; }),
        ("moe", MoeJob.Usage, options => { MoeJob.Run(options); return 0; }),
        ("lora", LoraJob.Usage, options => { LoraJob.Run(options); return 0; }),
        ("ptx", PtxJob.Usage, PtxJob.Run),
        ("inspect", "  inspect                    print the compile-time model cards of the declared models", _ => { Inspect(); return 0; }),
    };

    private static string Usage => "ModelDsl examples\n\n  (no arguments)             train KjvGpt on the embedded KJV text with the default settings\n"
        + string.Concat(Jobs.Where(j => j.Usage.Length > 0).Select(j => j.Usage.TrimEnd('\n') + "\n"))
        + "  bench [--steps N] [--model kjv|small] [--rounds R]   time a training step: generated vs hand-written TorchSharp GPT\n";

    public static int Run(string[] args)
    {
        try
        {
            var command = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "train";
            if (command is "help" or "-h" or "--help")
            {
                Console.WriteLine(Usage);
                return 0;
            }
            if (command == "bench") return ModelDsl.Examples.Benchmarks.TrainingStepBenchmark.Run(args[1..]);
            var job = Jobs.FirstOrDefault(j => j.Command == command);
            if (job.Run is null)
            {
                Console.Error.WriteLine($"Unknown command '{command}'.\n\n{Usage}");
                return 2;
            }
            return job.Run(new Options(args.SkipWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray()));
        }
        catch (Exception e) when (e is ArgumentException or FormatException or FileNotFoundException or SafetensorsException or InvalidOperationException)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }

    private static void Inspect()
    {
        foreach (var card in new[] { KjvGpt.Card, Gpt2Small.Card })
        {
            Console.WriteLine(card);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "  forward FLOPs/token at T={0}: {1:N0}; a training step costs about 3x that", card.Context, card.ForwardFlopsPerToken(card.Context)));
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "  training memory at batch 16 x {0}: {1:N1} MiB of activations kept for the backward pass, {2:N1} MiB of weights, gradients and AdamW moments",
                card.Context, card.ActivationBytes(16, card.Context) / 1048576.0, 16.0 * card.ParameterCount / 1048576.0));
            foreach (var term in card.ActivationByteTerms.OrderByDescending(t => t.At(16, card.Context, card.Context)).Take(5))
                Console.WriteLine("    " + term);
        }
    }
}
