namespace EmbedCache.Engine.Caching;

/// <summary>A request names an encoder the service does not have.</summary>
public sealed class UnknownEncoderException(string encoder, IEnumerable<string> known)
    : EngineException(ErrorKind.NotFound, $"unknown encoder {Echo.Quote(encoder)} (encoders: {string.Join(", ", known)})")
{
    public string Encoder { get; } = encoder;
}

/// <summary>A request that is malformed; <see cref="Field"/> names the offending field.</summary>
public sealed class InvalidRequestException(string field, string message)
    : EngineException(ErrorKind.InvalidArgument, $"{field}: {message}")
{
    public string Field { get; } = field;
}

/// <summary>A position past the end of something whose size is known, e.g. an index of a cached split.</summary>
public sealed class OutOfRangeRequestException(string field, string message)
    : EngineException(ErrorKind.OutOfRange, $"{field}: {message}")
{
    public string Field { get; } = field;
}

/// <summary>The request is valid but the cache is not in a state to answer it, e.g. a split not cached yet.</summary>
public sealed class NotCachedException(string message) : EngineException(ErrorKind.FailedPrecondition, message);

/// <summary>A limit or budget would be exceeded.</summary>
public sealed class LimitExceededException(string message) : EngineException(ErrorKind.ResourceExhausted, message);
