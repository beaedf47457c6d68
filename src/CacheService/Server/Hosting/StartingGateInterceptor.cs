using EmbedCache.Server.Grpc;
using Grpc.Core;

namespace EmbedCache.Server.Hosting;

/// <summary>
/// Until the engine is ready (the store recovering) and from the moment it starts to stop, trainer and admin calls
/// answer UNAVAILABLE at once with the reason ("recovering the store (…)", "the service is shutting down") instead of
/// reaching a handler; health and reflection stay open, so orchestrators can watch. A call this lets through finds
/// the engine ready: the handlers' registrations (<see cref="EmbedCacheHost.AddEmbedCacheServices"/>) rely on it.
/// </summary>
internal sealed class StartingGateInterceptor(EngineHost engine) : CallInterceptor
{
    private const string ContractPrefix = "/embedcache.v1.";

    protected override Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> handler)
    {
        if (context.Method.StartsWith(ContractPrefix, StringComparison.Ordinal) && engine.Unavailable is { } reason)
            throw new RpcException(new Status(StatusCode.Unavailable, reason + "; retry"));
        return handler();
    }
}
