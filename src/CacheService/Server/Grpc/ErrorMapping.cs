using EmbedCache.Engine;
using Grpc.Core;

namespace EmbedCache.Server.Grpc;

/// <summary>The one place an <see cref="ErrorKind"/> becomes a gRPC status code (the README's error list).</summary>
public static class ErrorMapping
{
    public static StatusCode ToStatusCode(ErrorKind kind) => kind switch
    {
        ErrorKind.InvalidArgument => StatusCode.InvalidArgument,
        ErrorKind.NotFound => StatusCode.NotFound,
        ErrorKind.OutOfRange => StatusCode.OutOfRange,
        ErrorKind.FailedPrecondition => StatusCode.FailedPrecondition,
        ErrorKind.ResourceExhausted => StatusCode.ResourceExhausted,
        ErrorKind.DataLoss => StatusCode.DataLoss,
        ErrorKind.Unavailable => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    };
}
