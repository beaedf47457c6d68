namespace EmbedCache.Engine.Embeddings;

/// <summary>Where an encoder's namespace lives (Quaterion's cache_type, chosen per encoder).</summary>
public enum Tier
{
    /// <summary>Gpu when CUDA is present, else Cpu. Only valid in configuration.</summary>
    Auto = 0,
    /// <summary>A device-resident table in front of the FASTER store.</summary>
    Gpu = 1,
    /// <summary>FASTER hybrid log sized to keep the namespace in memory.</summary>
    Cpu = 2,
    /// <summary>FASTER with a small memory window: larger than memory.</summary>
    Disk = 3,
}

/// <summary>What an encoder takes as features.</summary>
public enum InputKind
{
    /// <summary>UTF-8 text.</summary>
    Text = 1,
    /// <summary>A float32 vector of fixed length.</summary>
    FloatVector = 2,
    /// <summary>A float32 tensor of fixed shape (images: C x H x W).</summary>
    FloatTensor = 3,
    /// <summary>An encoded image (PNG or JPEG), decoded and resized by the encoder; a ready [3, H, W] float tensor is accepted too.</summary>
    Image = 4,
}
