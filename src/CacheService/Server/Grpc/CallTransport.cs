using System.Net.Sockets;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;

namespace EmbedCache.Server.Grpc;

/// <summary>Which listener a call came in on. Public for the in-process tests (the service assembly shows them no internals).</summary>
public static class CallTransport
{
    /// <summary>
    /// True when the call came over the Unix domain socket (EmbedCache:UnixSocketPath): the caller is on this machine
    /// and passed the socket file's permissions.
    /// </summary>
    /// <remarks>
    /// Kestrel's socket transport gives every connection its accepted <see cref="Socket"/> (a connection feature the
    /// request's features fall back to); IConnectionEndPointFeature, the obvious candidate, is not among its features.
    /// </remarks>
    public static bool IsUnixSocket(this ServerCallContext context) =>
        context.GetHttpContext().Features.Get<IConnectionSocketFeature>()?.Socket.AddressFamily == AddressFamily.Unix;
}
