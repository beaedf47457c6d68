using EmbedCache.Server.Hosting;
using EmbedCache.TestSupport;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// The real service in this process: real Kestrel on loopback ports it picked itself,
/// its own SaveDir, and a real gRPC channel to it.
/// </summary>
public sealed class InProcessService : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TempDirectory? _ownedDir;

    private InProcessService(WebApplication app, TempDirectory? ownedDir, ServiceEndpoints endpoints)
    {
        _app = app;
        _ownedDir = ownedDir;
        Endpoints = endpoints;
        Channel = GrpcChannel.ForAddress(endpoints.GrpcUri);
        Http = new HttpClient { BaseAddress = endpoints.HttpUri };
    }

    public ServiceEndpoints Endpoints { get; }

    public GrpcChannel Channel { get; }

    public HttpClient Http { get; }

    public IServiceProvider Services => _app.Services;

    public static Task<InProcessService> StartAsync(string? saveDir = null, params string[] extraArgs) =>
        StartWithAsync(null, saveDir, extraArgs);

    /// <summary>As <see cref="StartAsync"/>; <paramref name="configure"/> runs after the standard wiring (a test's interceptor, say).</summary>
    public static async Task<InProcessService> StartWithAsync(Action<WebApplicationBuilder>? configure, string? saveDir, params string[] extraArgs)
    {
        TempDirectory? owned = null;
        if (saveDir is null)
        {
            owned = new TempDirectory("service");
            saveDir = owned.Path;
        }

        string[] args =
        [
            "--EmbedCache:ListenAddress=127.0.0.1",
            "--EmbedCache:GrpcPort=0",
            "--EmbedCache:HttpPort=0",
            $"--EmbedCache:SaveDir={saveDir}",
            .. extraArgs,
        ];
        var app = EmbedCacheHost.Build(args, configure);
        try
        {
            await app.StartAsync();
            // The listeners open before the store has recovered; tests want a service that serves.
            await Wait.ForAsync(app.Services.GetRequiredService<EngineHost>().Ready, "the service's engine to start");
        }
        catch
        {
            await app.DisposeAsync();
            owned?.Dispose();
            throw;
        }

        return new InProcessService(app, owned, app.Services.GetRequiredService<ServiceEndpoints>());
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _ownedDir?.Dispose();
    }
}
