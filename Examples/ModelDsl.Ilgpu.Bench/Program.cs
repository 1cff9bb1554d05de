using System;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using ModelDsl.Examples;
using ModelDsl.Ilgpu;

// Times the ILGPU kernels and whole training steps on the best device (CUDA when there is an NVIDIA GPU), and prints
// each next to its roofline bound (docs/roofline.md). On the CPU accelerator it runs tiny shapes only: that checks the
// binary works, it measures nothing.
return GpuBench.Run(args);

internal static class GpuBench
{
    private const double PeakFlops = 66.9e12, Bandwidth = 3.0e12; // H100 SXM, FP32 SIMT and HBM3 (docs/roofline.md)

    public static int Run(string[] args)
    {
        int steps = args.Length > 1 && args[0] == "--steps" ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20;
        using var device = IlgpuDevice.Best();
        Console.WriteLine($"Device: {device.Description}");
        bool tiny = device.IsEmulator;
        if (tiny) Console.WriteLine("The CPU accelerator emulates every GPU thread with an OS thread: tiny shapes, to check this binary runs; the numbers mean nothing.");
        Console.WriteLine($"Roofline machine: H100 SXM, {PeakFlops / 1e12:F1} TFLOP/s FP32 SIMT, {Bandwidth / 1e12:F1} TB/s.");
        Console.WriteLine();

        KernelTimings(device, tiny);
        Console.WriteLine();
        TrainingSteps(device, tiny, steps);
        return 0;
    }

    private static void KernelTimings(IlgpuDevice device, bool tiny)
    {
        var k = device.Kernels;
        var a = device.Accelerator;
        // GPT-2 small's shapes at B=8, T=1024 (tiny on the emulator).
        int tokens = tiny ? 64 : 8 * 1024, hidden = tiny ? 32 : 768, inner = 4 * hidden, vocab = tiny ? 50 : 50257;
        int batch = tiny ? 2 : 8, time = tokens / batch, heads = tiny ? 2 : 12, headDim = hidden / heads;
        using var x = Random(a, (long)tokens * inner);
        using var w = Random(a, (long)inner * Math.Max(vocab, inner));
        using var y = Random(a, (long)tokens * Math.Max(vocab, inner));
        using var stats = Random(a, (long)batch * heads * time);
        Console.WriteLine("| kernel | shape | ms | GFLOP/s | GB/s | roofline bound (ms) | of bound |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        void Row(string name, string shape, double flops, double bytes, Action launch)
        {
            double ms = Time(a, launch);
            double bound = Math.Max(flops / PeakFlops, bytes / Bandwidth) * 1e3;
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "| {0} | {1} | {2:F3} | {3:F0} | {4:F0} | {5:F3} | {6:P0} |",
                name, shape, ms, flops / ms / 1e6, bytes / ms / 1e6, bound, bound / ms));
        }
        Row("Matmul x W (c_fc)", $"{tokens}x{inner}x{hidden}", 2.0 * tokens * inner * hidden, 4.0 * (tokens * hidden + hidden * inner + tokens * inner),
            () => k.Matmul(y.View.SubView(0, (long)tokens * inner), x.View.SubView(0, (long)tokens * hidden), w.View.SubView(0, (long)hidden * inner), default, tokens, inner, hidden, false, false, false));
        Row("Matmul dY W^T (c_fc dX)", $"{tokens}x{hidden}x{inner}", 2.0 * tokens * inner * hidden, 4.0 * (tokens * inner + hidden * inner + 2.0 * tokens * hidden),
            () => k.Matmul(x.View.SubView(0, (long)tokens * hidden), y.View.SubView(0, (long)tokens * inner), w.View.SubView(0, (long)hidden * inner), default, tokens, hidden, inner, false, true, true));
        Row("Matmul X^T dY (c_fc dW)", $"{hidden}x{inner}x{tokens}", 2.0 * tokens * inner * hidden, 4.0 * (tokens * hidden + tokens * inner + 2.0 * hidden * inner),
            () => k.Matmul(w.View.SubView(0, (long)hidden * inner), x.View.SubView(0, (long)tokens * hidden), y.View.SubView(0, (long)tokens * inner), default, hidden, inner, tokens, true, false, true));
        Row("Matmul LM head", $"{tokens}x{vocab}x{hidden}", 2.0 * tokens * vocab * hidden, 4.0 * ((double)tokens * hidden + (double)vocab * hidden + (double)tokens * vocab),
            () => k.Matmul(y.View.SubView(0, (long)tokens * vocab), x.View.SubView(0, (long)tokens * hidden), w.View.SubView(0, (long)vocab * hidden), default, tokens, vocab, hidden, false, true, false));
        ArrayView<float> qkv = y.View; // [tokens, 3 * hidden]: q, k and v read as column views, as the generated code does
        var shape = new AttentionShape(batch, heads, heads, headDim, time, time, 0, true, 0, 1f / MathF.Sqrt(headDim), 3 * hidden, 3 * hidden, 3 * hidden);
        double scores = (double)batch * heads * time * time * headDim / 2;
        Row("AttentionForward (causal)", $"B{batch} H{heads} T{time} D{headDim}", 4 * scores, 4.0 * (4.0 * tokens * hidden + batch * heads * time),
            () => k.AttentionForward(x.View.SubView(0, (long)tokens * hidden), stats.View, qkv, qkv.SubView(hidden), qkv.SubView(2 * hidden), default, default, shape));
        Row("LayerNormForward", $"{tokens}x{hidden}", 8.0 * tokens * hidden, 4.0 * (2.0 * tokens * hidden + 2 * tokens),
            () => k.LayerNormForward(y.View.SubView(0, (long)tokens * hidden), stats.View.SubView(0, tokens), stats.View.SubView(tokens, tokens), x.View.SubView(0, (long)tokens * hidden), w.View.SubView(0, hidden), w.View.SubView(hidden, hidden), tokens, hidden, 1e-5f));
        Row("GELU-tanh forward", $"{tokens}x{inner}", 20.0 * tokens * inner, 8.0 * tokens * inner,
            () => k.ActivationForward(KernelActivation.GeluTanh, y.View.SubView(0, (long)tokens * inner), x.View.SubView(0, (long)tokens * inner)));

        // The activation epilogue (what the generated c_fc + GELU runs), against the plain product then the activation
        // kernel: it saves a pass over [tokens, inner] and a launch, but its kernel takes 43 registers to the plain
        // product's 40 (5 groups per SM instead of 6 on sm_90). Which wins is this ratio's to say.
        using var activated = Random(a, (long)tokens * inner);
        var pre = y.View.SubView(0, (long)tokens * inner);
        var input = x.View.SubView(0, (long)tokens * hidden);
        var weight = w.View.SubView(0, (long)hidden * inner);
        double fused = Time(a, () => k.MatmulActivation(pre, activated.View, KernelActivation.GeluTanh, input, weight, default, tokens, inner, hidden, transposeB: false));
        double unfused = Time(a, () =>
        {
            k.Matmul(pre, input, weight, default, tokens, inner, hidden, false, false, false);
            k.ActivationForward(KernelActivation.GeluTanh, activated.View, pre);
        });
        Console.WriteLine();
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "c_fc + GELU-tanh ({0}x{1}x{2}): MatmulActivation {3:F3} ms, Matmul then ActivationForward {4:F3} ms; fused / unfused = {5:F2}",
            tokens, inner, hidden, fused, unfused, fused / unfused));
    }

    private static void TrainingSteps(IlgpuDevice device, bool tiny, int steps)
    {
        Console.WriteLine("| model | batch | step (ms) | tokens/s | roofline bound (ms) | of bound |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");
        // Roofline bounds of a whole step from docs/roofline.md (KjvGpt at 16 x 128, GPT-2 small at 8 x 1024).
        Step("KjvGpt", KjvGpt.CreateIlgpu(device), tiny ? 2 : 16, tiny ? 16 : 128, tiny ? 2 : steps, 0.270);
        if (!tiny) Step("GPT-2 small (no dropout)", ModelDsl.Ilgpu.Bench.Gpt2SmallBench.CreateIlgpu(device), 8, 1024, steps, 108.85);
    }

    private static void Step(string name, IlgpuCausalLanguageModel model, int batch, int time, int steps, double boundMs)
    {
        using var _ = model;
        var random = new Random(1);
        var ids = Enumerable.Range(0, batch * time).Select(_ => random.Next(model.Card.Vocab)).ToArray();
        var targets = Enumerable.Range(0, batch * time).Select(_ => random.Next(model.Card.Vocab)).ToArray();
        void One(int step)
        {
            model.ForwardBackward(ids, targets, batch, time);
            model.AdamWStep(step, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1f);
        }
        One(1); // compiles every kernel
        model.Synchronize();
        var watch = Stopwatch.StartNew();
        for (int s = 0; s < steps; s++) One(s + 2);
        model.Synchronize();
        double ms = watch.Elapsed.TotalMilliseconds / steps;
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "| {0} | {1}x{2} | {3:F2} | {4:N0} | {5:F3} | {6:P0} |",
            name, batch, time, ms, batch * time / (ms / 1e3), boundMs, boundMs / ms));
    }

    private static double Time(Accelerator a, Action launch)
    {
        launch(); // compile and warm up
        a.Synchronize();
        int reps = a.AcceleratorType == AcceleratorType.CPU ? 1 : 20;
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++) launch();
        a.Synchronize();
        return watch.Elapsed.TotalMilliseconds / reps;
    }

    private static MemoryBuffer1D<float, Stride1D.Dense> Random(Accelerator a, long length)
    {
        var random = new Random(7);
        var data = new float[length];
        for (long i = 0; i < length; i++) data[i] = (float)(random.NextDouble() - 0.5);
        return a.Allocate1D(data);
    }
}
