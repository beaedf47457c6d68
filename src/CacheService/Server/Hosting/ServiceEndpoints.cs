using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace EmbedCache.Server.Hosting;

/// <summary>
/// The listeners as actually bound. With port 0 in config, Kestrel picks a free port
/// and writes it back into the listen options; tests and the start-up log read it here.
/// </summary>
public sealed class ServiceEndpoints
{
    private ListenOptions? _grpc;
    private ListenOptions? _http;

    internal void Set(ListenOptions grpc, ListenOptions http)
    {
        _grpc = grpc;
        _http = http;
    }

    /// <summary>True when the gRPC listener speaks TLS (EmbedCache:Tls).</summary>
    public bool GrpcUsesTls { get; internal set; }

    public IPEndPoint Grpc => Endpoint(_grpc, "gRPC");

    /// <summary>The full path of the gRPC Unix domain socket (EmbedCache:UnixSocketPath), or null when there is none.</summary>
    public string? UnixSocketPath { get; internal set; }

    /// <summary><see cref="UnixSocketPath"/> as a client address, <c>unix:///path</c>, or null.</summary>
    public Uri? UnixSocketUri => UnixSocketPath is null ? null : new Uri("unix://" + UnixSocketPath);

    public IPEndPoint Http => Endpoint(_http, "HTTP");

    public Uri GrpcUri => ToUri(Grpc, GrpcUsesTls ? "https" : "http");

    public Uri HttpUri => ToUri(Http, "http");

    private static IPEndPoint Endpoint(ListenOptions? options, string what) =>
        options?.IPEndPoint ?? throw new InvalidOperationException($"The {what} listener is not configured yet.");

    private static Uri ToUri(IPEndPoint ep, string scheme)
    {
        var host = ep.Address.Equals(IPAddress.Any) ? "127.0.0.1"
            : ep.Address.Equals(IPAddress.IPv6Any) ? "[::1]"
            : ep.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{ep.Address}]"
            : ep.Address.ToString();
        return new Uri($"{scheme}://{host}:{ep.Port}");
    }
}
