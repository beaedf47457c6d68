namespace EmbedCache.Engine;

/// <summary>
/// What kind of failure an <see cref="EngineException"/> reports, as the caller needs to act on it. The server maps
/// each kind to one gRPC status in one place (<c>EmbedCache.Server.Grpc.ErrorMapping</c>); anything that is not an
/// <see cref="EngineException"/> is a bug and reaches the caller as INTERNAL with an id to find in the log.
/// </summary>
public enum ErrorKind
{
    /// <summary>The request itself is wrong (a field, a feature, a path): the caller must change it.</summary>
    InvalidArgument,

    /// <summary>A named thing (encoder, dataset, split, job) does not exist.</summary>
    NotFound,

    /// <summary>A position or index lies past the end of what exists.</summary>
    OutOfRange,

    /// <summary>The request is well formed but the state does not allow it yet (not cached, dataset or encoder broken).</summary>
    FailedPrecondition,

    /// <summary>A limit was reached (size, rate, memory, a slow reader): retrying later or smaller may work.</summary>
    ResourceExhausted,

    /// <summary>Stored data failed its checksum.</summary>
    DataLoss,

    /// <summary>The service cannot serve this now (shutting down, save directory failing): retry.</summary>
    Unavailable,
}

/// <summary>
/// The base of every error the engine reports to a caller on purpose. Each concrete type is declared next to the
/// code that throws it and fixes its <see cref="Kind"/>; its message names the problem for a person.
/// </summary>
public abstract class EngineException(ErrorKind kind, string message, Exception? innerException = null)
    : Exception(message, innerException)
{
    /// <summary>How the caller should read this failure.</summary>
    public ErrorKind Kind { get; } = kind;
}
