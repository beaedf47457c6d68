using Grpc.Core;
using Grpc.Core.Interceptors;

namespace EmbedCache.Server.Hosting;

/// <summary>
/// While the engine starts (the store recovering), trainer and admin calls answer UNAVAILABLE at once with the reason
/// ("recovering the store (…)") instead of waiting on it; health and reflection stay open, so orchestrators can watch.
/// </summary>
internal sealed class StartingGateInterceptor(EngineHost engine) : Interceptor
{
    private const string ContractPrefix = "/embedcache.v1.";

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        // Only while starting: once stopping, the handlers' own path reports the shutdown.
        if (!engine.Ready.IsCompleted && context.Method.StartsWith(ContractPrefix, StringComparison.Ordinal) && engine.Unavailable is { } reason)
            throw new RpcException(new Status(StatusCode.Unavailable, reason + "; retry"));
    }
}
