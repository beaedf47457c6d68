using EmbedCache.Server.Grpc;
using Grpc.Core;

namespace EmbedCache.Server.Hosting.Security;

/// <summary>
/// API keys in two roles. No or unknown key → UNAUTHENTICATED; a trainer key on CacheAdmin → PERMISSION_DENIED.
/// Health and reflection stay open. Without configured keys (anonymous mode, loopback only unless allowed)
/// every call passes. The caller's identity is left in <see cref="ServerCallContext.UserState"/> for the limits.
/// </summary>
internal sealed partial class AuthInterceptor(ApiKeySet keys, ILogger<AuthInterceptor> logger) : CallInterceptor
{
    public const string CallerKey = "embedcache.caller";
    private const string AdminPrefix = "/embedcache.v1.CacheAdmin/";

    protected override Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> handler)
    {
        Authorize(context);
        return handler();
    }

    private void Authorize(ServerCallContext context)
    {
        var method = context.Method;
        if (method.StartsWith("/grpc.health.v1.", StringComparison.Ordinal) || method.StartsWith("/grpc.reflection.", StringComparison.Ordinal))
            return;
        if (!keys.Enabled)
        {
            context.UserState[CallerKey] = "peer:" + PeerAddress(context.Peer);
            return;
        }

        var token = ApiKeySet.BearerToken(context.RequestHeaders.GetValue("authorization"));
        if (token is null)
        {
            Rejected(logger, method, context.Peer, "no key");
            throw new RpcException(new Status(StatusCode.Unauthenticated, "this service needs an API key: send 'authorization: Bearer <key>'"));
        }

        var role = keys.Authenticate(token, out var caller);
        if (role == CallerRole.None)
        {
            Rejected(logger, method, context.Peer, "unknown key");
            throw new RpcException(new Status(StatusCode.Unauthenticated, "the API key is not valid"));
        }

        if (role != CallerRole.Admin && method.StartsWith(AdminPrefix, StringComparison.Ordinal))
        {
            Rejected(logger, method, context.Peer, "trainer key on an admin RPC");
            throw new RpcException(new Status(StatusCode.PermissionDenied, "CacheAdmin RPCs need an admin key; this is a trainer key"));
        }

        context.UserState[CallerKey] = caller;
    }

    /// <summary><c>ipv4:127.0.0.1:5000</c> → <c>ipv4:127.0.0.1</c>: one caller per address, whatever its port.</summary>
    internal static string PeerAddress(string peer)
    {
        var colon = peer.LastIndexOf(':');
        return colon > 0 ? peer[..colon] : peer;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rejected {Method} from {Peer}: {Reason}")]
    private static partial void Rejected(ILogger logger, string method, string peer, string reason);
}
