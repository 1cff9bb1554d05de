using ModelDsl;

namespace ModelDsl.Examples
{
    /// <summary>
    /// KjvGpt with LoRA adapters of rank 8 (alpha 16, so updates are scaled by 2) on its queries and values. GPT-2 fuses
    /// the query, key and value projections into one c_attn, so the whole c_attn is adapted, as PEFT does with
    /// target_modules=["c_attn"]. Its base weights are KjvGpt's: a KjvGpt checkpoint loads into it (model.Lora.LoadBase).
    /// </summary>
    [Decoder(Vocab = 64, Context = 128, Hidden = 128, Heads = 4, Layers = 4)]
    [FeedForward(Inner = 512, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
    [Lora(Rank = 8, Alpha = 16, Targets = LoraTargets.Query | LoraTargets.Value)]
    public partial record KjvLoraGpt;

    /// <summary>GPT-2 small with KjvLoraGpt's LoRA settings: its card counts what those settings train at full scale.</summary>
    [Decoder(Vocab = 50257, Context = 1024, Hidden = 768, Heads = 12, Layers = 12)]
    [FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm, TiedEmbeddings, Dropout(0.1)]
    [Lora(Rank = 8, Alpha = 16, Targets = LoraTargets.Query | LoraTargets.Value)]
    public partial record Gpt2SmallLora;
}
