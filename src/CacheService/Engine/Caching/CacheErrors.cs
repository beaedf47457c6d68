namespace EmbedCache.Engine.Caching;

/// <summary>A request names an encoder the service does not have (NOT_FOUND).</summary>
public sealed class UnknownEncoderException(string encoder, IEnumerable<string> known)
    : Exception($"unknown encoder {Echo.Quote(encoder)} (encoders: {string.Join(", ", known)})")
{
    public string Encoder { get; } = encoder;
}

/// <summary>A request that is malformed; <see cref="Field"/> names the offending field (INVALID_ARGUMENT).</summary>
public sealed class InvalidRequestException(string field, string message) : Exception($"{field}: {message}")
{
    public string Field { get; } = field;
}

/// <summary>A position past the end of something whose size is known, e.g. an index of a cached split (OUT_OF_RANGE).</summary>
public sealed class OutOfRangeRequestException(string field, string message) : Exception($"{field}: {message}")
{
    public string Field { get; } = field;
}

/// <summary>The request is valid but the cache is not in a state to answer it, e.g. a split not cached yet (FAILED_PRECONDITION).</summary>
public sealed class NotCachedException(string message) : Exception(message);

/// <summary>A limit or budget would be exceeded (RESOURCE_EXHAUSTED).</summary>
public sealed class LimitExceededException(string message) : Exception(message);
