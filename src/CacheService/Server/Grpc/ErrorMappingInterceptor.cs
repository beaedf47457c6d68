using EmbedCache.Engine;
using Grpc.Core;

namespace EmbedCache.Server.Grpc;

/// <summary>
/// Turns what a handler throws into a gRPC status with a message a person can act on. An
/// <see cref="EngineException"/> carries its kind (<see cref="ErrorMapping"/>) and message; a call the caller
/// cancelled is CANCELLED; work cut off by shutdown (cancelled, or finding the engine disposed) is UNAVAILABLE.
/// Anything else is a bug: INTERNAL, with an id to find in the log. No stack trace reaches a client.
/// </summary>
internal sealed partial class ErrorMappingInterceptor(IHostApplicationLifetime lifetime, ILogger<ErrorMappingInterceptor> logger)
    : CallInterceptor
{
    protected override async Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> handler)
    {
        try
        {
            return await handler();
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw new RpcException(Map(e, context));
        }
    }

    private Status Map(Exception e, ServerCallContext context)
    {
        switch (e)
        {
            case EngineException { Kind: var kind } engine:
                if (kind == ErrorKind.DataLoss)
                    Corruption(logger, context.Method, e.Message);
                return new Status(ErrorMapping.ToStatusCode(kind), engine.Message);
            case OperationCanceledException when context.CancellationToken.IsCancellationRequested:
                return new Status(StatusCode.Cancelled, "the call was cancelled");
            case OperationCanceledException or ObjectDisposedException when lifetime.ApplicationStopping.IsCancellationRequested:
                return new Status(StatusCode.Unavailable, "the service is shutting down; retry");
            default:
                var id = Guid.NewGuid().ToString("N")[..8];
                Unexpected(logger, e, id, context.Method);
                return new Status(StatusCode.Internal, $"internal error {id}; see the service log");
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Internal error {ErrorId} in {Method}")]
    private static partial void Unexpected(ILogger logger, Exception exception, string errorId, string method);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stored data failed its checksum in {Method}: {Detail}")]
    private static partial void Corruption(ILogger logger, string method, string detail);
}
