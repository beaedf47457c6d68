using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Storage;
using EmbedCache.Server.Hosting;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace EmbedCache.Server.Grpc;

/// <summary>
/// Turns engine outcomes into gRPC statuses with a message a person can act on. Unexpected
/// exceptions become INTERNAL with an id to find in the log; no stack trace reaches a client.
/// </summary>
internal sealed partial class ErrorMappingInterceptor(ILogger<ErrorMappingInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Map(e, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Map(e, context);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Map(e, context);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Map(e, context);
        }
    }

    private RpcException Map(Exception e, ServerCallContext context)
    {
        var status = e switch
        {
            InvalidRequestException or InvalidFeaturesException or DatasetPathException or ArgumentException => new Status(StatusCode.InvalidArgument, e.Message),
            UnknownEncoderException or DatasetNotFoundException => new Status(StatusCode.NotFound, e.Message),
            OutOfRangeRequestException => new Status(StatusCode.OutOfRange, e.Message),
            NotCachedException or DatasetException or EncoderLoadException => new Status(StatusCode.FailedPrecondition, e.Message),
            LimitExceededException => new Status(StatusCode.ResourceExhausted, e.Message),
            StoreCorruptionException => new Status(StatusCode.DataLoss, e.Message),
            SaveDirWriteException => new Status(StatusCode.Unavailable, e.Message),
            ServiceUnavailableException or ObjectDisposedException => new Status(StatusCode.Unavailable, "the service is shutting down; retry"),
            OperationCanceledException when context.CancellationToken.IsCancellationRequested => new Status(StatusCode.Cancelled, "the call was cancelled"),
            OperationCanceledException => new Status(StatusCode.Unavailable, "the service is shutting down; retry"),
            _ => Internal(e, context),
        };
        if (e is StoreCorruptionException)
            Corruption(logger, context.Method, e.Message);
        return new RpcException(status);
    }

    private Status Internal(Exception e, ServerCallContext context)
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        Unexpected(logger, e, id, context.Method);
        return new Status(StatusCode.Internal, $"internal error {id}; see the service log");
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Internal error {ErrorId} in {Method}")]
    private static partial void Unexpected(ILogger logger, Exception exception, string errorId, string method);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stored data failed its checksum in {Method}: {Detail}")]
    private static partial void Corruption(ILogger logger, string method, string detail);
}
