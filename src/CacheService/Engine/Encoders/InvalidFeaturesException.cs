namespace EmbedCache.Engine.Encoders;

/// <summary>
/// A request's features cannot be encoded. The message names the item and the problem, in words a
/// caller can act on; the encoder itself is unaffected and keeps serving.
/// </summary>
public sealed class InvalidFeaturesException : Exception
{
    /// <summary>Used as <see cref="ItemIndex"/> when the problem concerns the whole batch (e.g. its item shape).</summary>
    public const int WholeBatch = -1;

    public InvalidFeaturesException()
        : this(WholeBatch, "invalid features")
    {
    }

    public InvalidFeaturesException(string message)
        : this(WholeBatch, message)
    {
    }

    public InvalidFeaturesException(string message, Exception innerException)
        : base(message, innerException)
    {
        ItemIndex = WholeBatch;
        Problem = message;
    }

    public InvalidFeaturesException(int itemIndex, string problem, Exception? innerException = null)
        : base(itemIndex == WholeBatch ? $"batch: {problem}" : $"item {itemIndex}: {problem}", innerException)
    {
        ItemIndex = itemIndex;
        Problem = problem;
    }

    /// <summary>Index of the bad item in the batch, or <see cref="WholeBatch"/>.</summary>
    public int ItemIndex { get; }

    /// <summary>The problem without the item prefix.</summary>
    public string Problem { get; }
}

/// <summary>An encoder could not be created from its configuration; the message names the encoder (and file).</summary>
public sealed class EncoderLoadException : Exception
{
    public EncoderLoadException()
    {
    }

    public EncoderLoadException(string message)
        : base(message)
    {
    }

    public EncoderLoadException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
