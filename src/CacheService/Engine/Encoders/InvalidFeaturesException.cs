namespace EmbedCache.Engine.Encoders;

/// <summary>
/// A request's features cannot be encoded. The message names the item and the problem, in words a
/// caller can act on; the encoder itself is unaffected and keeps serving.
/// </summary>
public sealed class InvalidFeaturesException : EngineException
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
        : base(ErrorKind.InvalidArgument, message, innerException)
    {
        ItemIndex = WholeBatch;
        Problem = message;
    }

    public InvalidFeaturesException(int itemIndex, string problem, Exception? innerException = null)
        : base(ErrorKind.InvalidArgument, itemIndex == WholeBatch ? $"batch: {problem}" : $"item {itemIndex}: {problem}", innerException)
    {
        ItemIndex = itemIndex;
        Problem = problem;
    }

    /// <summary>Index of the bad item in the batch, or <see cref="WholeBatch"/>.</summary>
    public int ItemIndex { get; }

    /// <summary>The problem without the item prefix.</summary>
    public string Problem { get; }
}
