using System.Net.Sockets;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;

namespace EmbedCache.Service.Grpc;

internal static class CallTransport
{
    /// <summary>True when the call came in over the service's Unix socket (a trainer on this host).</summary>
    public static bool IsUnixSocket(this ServerCallContext context) =>
        context.GetHttpContext().Features.Get<IConnectionEndPointFeature>()?.LocalEndPoint is UnixDomainSocketEndPoint;
}
