using System.Net;
using EmbedCache.CacheClient;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;

namespace EmbedCache.CacheService.Tests;

public sealed class HostingTests
{
    [Fact]
    public async Task HealthCheck_OverLoopbackGrpc_ReportsServing()
    {
        await using var service = await InProcessService.StartAsync();
        using var client = new EmbedCacheClient(service.Channel);

        var status = await client.CheckHealthAsync();

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status);
        Assert.NotEqual(0, service.Endpoints.Grpc.Port);
        Assert.NotEqual(service.Endpoints.Grpc.Port, service.Endpoints.Http.Port);
    }

    [Fact]
    public async Task Healthz_OverHttp1_ReturnsHealthy()
    {
        await using var service = await InProcessService.StartAsync();

        using var response = await service.Http.GetAsync(new Uri("/healthz", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new Version(1, 1), response.Version);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Reflection_ListsTheHealthService()
    {
        await using var service = await InProcessService.StartAsync();
        var reflection = new ServerReflection.ServerReflectionClient(service.Channel);

        using var call = reflection.ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();

        Assert.Contains("grpc.health.v1.Health", names);
        Assert.Contains("embedcache.v1.EmbeddingCache", names);
        Assert.Contains("embedcache.v1.CacheAdmin", names);
    }
}
