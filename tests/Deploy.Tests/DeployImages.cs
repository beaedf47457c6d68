using System.Net.Sockets;
using System.Text.Json;
using EmbedCache.TestSupport;

namespace EmbedCache.Deploy.Tests;

/// <summary>
/// Builds the images once per test run through deploy/build-images.sh (local Debian base, self-contained
/// publishes; cached when nothing changed), and turns off Testcontainers' resource reaper, whose image
/// no registry here serves: every test disposes its own containers and volumes.
/// </summary>
public sealed class DeployImages : IAsyncLifetime
{
    public const string Service = "embedcache/service:latest";
    public const string Trainer = "embedcache/trainer:latest";

    static DeployImages()
    {
        // Read by Testcontainers when its settings are first touched, which is after this.
        Environment.SetEnvironmentVariable("TESTCONTAINERS_RYUK_DISABLED", "true");
        // Testcontainers 4.16 asks for API 1.44; Debian 12's docker.io (20.10) answers up to 1.41 and
        // refuses newer clients. Ask for what the engine offers when that is older.
        if (Environment.GetEnvironmentVariable("DOCKER_API_VERSION") is null && EngineApiVersion() is { } engine && engine < new Version(1, 44))
            Environment.SetEnvironmentVariable("DOCKER_API_VERSION", engine.ToString());
    }

    private static Version? EngineApiVersion()
    {
        if (DockerFactAttribute.Unreachable is not null || Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 })
            return null;
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint("/var/run/docker.sock"), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        // Unversioned /version: every engine answers it, with the highest API version it speaks.
        using var doc = JsonDocument.Parse(http.GetStringAsync(new Uri("http://docker/version")).GetAwaiter().GetResult());
        return Version.TryParse(doc.RootElement.GetProperty("ApiVersion").GetString(), out var v) ? v : null;
    }

    public string BuildLog { get; private set; } = "";

    public async Task InitializeAsync()
    {
        if (DockerFactAttribute.Unreachable is not null || Environment.GetEnvironmentVariable("EMBEDCACHE_SKIP_IMAGE_BUILD") == "1")
            return;
        var run = await ProgramRun.RunAsync("bash", [Path.Combine(RepoPaths.Root, "deploy", "build-images.sh")], RepoPaths.Root,
            timeout: TimeSpan.FromMinutes(20));
        BuildLog = run.ToString();
        if (run.ExitCode != 0)
            throw new InvalidOperationException($"deploy/build-images.sh failed: {run}");
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

[CollectionDefinition(Name)]
public sealed class DeployCollection : ICollectionFixture<DeployImages>
{
    public const string Name = "deploy images";
}
