using System.Globalization;
using System.Net;
using System.Net.Sockets;
using EmbedCache.TestSupport;
using Until = EmbedCache.TestSupport.Wait;

namespace EmbedCache.Deploy.Tests;

/// <summary>
/// The README's "Run with Docker Compose": <c>deploy/build-images.sh</c>, then <c>docker-compose up</c>, with the
/// compose tool the script installs (Debian's docker.io brings none). Its own project name, free ports, and
/// <c>down -v</c> at the end.
/// </summary>
[Collection(DeployCollection.Name)]
public sealed class ComposeTests(DeployImages images)
{
    [DockerFact]
    public async Task ComposeUp_WithTheToolBuildImagesInstalled_StartsTheServiceHealthy()
    {
        Assert.NotNull(images);
        (string File, string[] Args) compose = ProgramRun.FindOnPath("docker-compose") is { } v1 ? (v1, [])
            : (await ProgramRun.RunAsync("docker", ["compose", "version"])).ExitCode == 0 ? ("docker", ["compose"])
            : throw new Xunit.Sdk.XunitException("deploy/build-images.sh left no compose tool: neither docker-compose nor `docker compose`");
        var project = "embedcache-test-" + Guid.NewGuid().ToString("N")[..8];
        var (grpcPort, httpPort) = (FreePort(), FreePort());
        var environment = new Dictionary<string, string>
        {
            ["EMBEDCACHE_GRPC_PORT"] = grpcPort.ToString(CultureInfo.InvariantCulture),
            ["EMBEDCACHE_HTTP_PORT"] = httpPort.ToString(CultureInfo.InvariantCulture),
        };

        try
        {
            var up = await ProgramRun.RunAsync(compose.File, [.. compose.Args, "-p", project, "up", "-d", "embedcache"], RepoPaths.Root, environment);
            Assert.True(up.ExitCode == 0, up.ToString());
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
            await Until.UntilAsync(async () =>
            {
                try
                {
                    return (await http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode == HttpStatusCode.OK;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, "the compose service's /healthz to answer 200", TimeSpan.FromMinutes(3));
        }
        finally
        {
            await ProgramRun.RunAsync(compose.File, [.. compose.Args, "-p", project, "down", "-v"], RepoPaths.Root, environment);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
