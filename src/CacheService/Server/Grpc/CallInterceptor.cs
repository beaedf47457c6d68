using Grpc.Core;
using Grpc.Core.Interceptors;

namespace EmbedCache.Server.Grpc;

/// <summary>
/// An interceptor that treats the four kinds of call alike: it wraps each call's handler in <see cref="AroundAsync"/>,
/// written once, instead of repeating the same try/catch in four overrides. An interceptor that must see the requests
/// themselves (a unary request, a request stream) overrides <see cref="Interceptor"/> directly instead.
/// </summary>
public abstract class CallInterceptor : Interceptor
{
    /// <summary>
    /// Runs <paramref name="handler"/> (the rest of the pipeline) for the call; a streaming call's handler yields a
    /// result of no meaning. An exception thrown before calling it refuses the call.
    /// </summary>
    protected abstract Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> handler);

    public sealed override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation) =>
        AroundAsync(context, () => continuation(request, context));

    public sealed override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        AroundAsync(context, () => continuation(requestStream, context));

    public sealed override Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        AroundAsync(context, () => Done(continuation(request, responseStream, context)));

    public sealed override Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        AroundAsync(context, () => Done(continuation(requestStream, responseStream, context)));

    private static async Task<bool> Done(Task call)
    {
        await call;
        return true;
    }
}
