using System.Globalization;
using System.Net;
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
        var (grpcPort, httpPort) = (Compose.FreePort(), Compose.FreePort());
        var compose = await Compose.CreateAsync(new Dictionary<string, string>
        {
            ["EMBEDCACHE_GRPC_PORT"] = grpcPort.ToString(CultureInfo.InvariantCulture),
            ["EMBEDCACHE_HTTP_PORT"] = httpPort.ToString(CultureInfo.InvariantCulture),
        });

        try
        {
            var up = await compose.RunAsync(["up", "-d", "embedcache"]);
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
            await compose.RunAsync(["down", "-v"]);
        }
    }
}
