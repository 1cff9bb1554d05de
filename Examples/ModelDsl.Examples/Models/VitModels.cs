using ModelDsl;

namespace ModelDsl.Examples
{
    /// <summary>
    /// A Vision Transformer for 28 x 28 greyscale images (Fashion-MNIST), sized to train in a few minutes on two CPU
    /// cores: ViT's architecture (patch embedding, class token, learned positions, pre-norm encoder, classifier on the
    /// class token) with 7 x 7 patches, so 16 patches + the class token = 17 positions, at 1/12 of ViT-B's width and
    /// 1/3 of its depth.
    /// </summary>
    [VisionEncoder(ImageSize = 28, PatchSize = 7, Channels = 1, Hidden = 64, Heads = 4, Layers = 4, Classes = 10)]
    [FeedForward(Inner = 128)]
    [LearnedPositions, PreNorm(Epsilon = 1e-6)]
    public partial record FashionVit;
}
