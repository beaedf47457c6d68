namespace EmbedCache.Engine.Keys;

/// <summary>How an item is identified inside an encoder's namespace. The value is part of the stored key.</summary>
public enum KeyScheme
{
    /// <summary><c>(dataset, split, index)</c>, Quaterion's default.</summary>
    Positional = 1,

    /// <summary>Bytes chosen by the client's key extractor (1..256 bytes).</summary>
    Custom = 2,

    /// <summary>A 128-bit hash of the feature bytes (<see cref="ContentHash"/>), shared across datasets.</summary>
    Content = 3,
}
