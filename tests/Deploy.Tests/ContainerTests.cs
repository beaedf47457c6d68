using System.Net;
using System.Net.Sockets;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Volumes;
using EmbedCache.TestSupport;
using Until = EmbedCache.TestSupport.Wait;
using ContainerWait = DotNet.Testcontainers.Builders.Wait;

namespace EmbedCache.Deploy.Tests;

/// <summary>
/// The service image and the trainer image in a real Docker engine: host networking, 127.0.0.1 only,
/// the cache in a Docker volume that outlives the service container.
/// </summary>
[Collection(DeployCollection.Name)]
public sealed class ContainerTests(DeployImages images)
{
    [DockerFact]
    public async Task ServiceImage_StartsHealthy_TrainerImageTrainsAgainstIt_AndARestartedServiceIsWarm()
    {
        Assert.NotNull(images);
        var (grpcPort, httpPort) = (FreePort(), FreePort());
        var volumeName = $"embedcache-test-{Guid.NewGuid():N}";
        await using var volume = new VolumeBuilder().WithName(volumeName).Build();
        await volume.CreateAsync();

        string firstRun;
        await using (var service = await StartServiceAsync(volumeName, grpcPort, httpPort))
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode);
            Assert.Contains("\"name\":\"random-mlp\"", await http.GetStringAsync(new Uri("/api/status", UriKind.Relative)), StringComparison.Ordinal);

            firstRun = await TrainAsync(grpcPort, epochs: 2);
            Assert.Contains("cached: digits/random-mlp dim 128", firstRun, StringComparison.Ordinal);
            Assert.Contains("encoded 1797, already cached 0", firstRun, StringComparison.Ordinal);
            Assert.Contains("epoch 2/2", firstRun, StringComparison.Ordinal);

            // The image's HEALTHCHECK (the service's own probe, following EmbedCache__HttpPort) reports healthy.
            await Until.UntilAsync(async () => await HealthAsync(service) == "healthy", "the service container's HEALTHCHECK to pass",
                TimeSpan.FromSeconds(90));
            Assert.Contains("embedcache", await ExecAsync(service, "id", "-un"), StringComparison.Ordinal);
            // Stopped with SIGTERM: the service checkpoints into the volume on the way out.
            await service.StopAsync();
        }

        await using (var restarted = await StartServiceAsync(volumeName, grpcPort, httpPort))
        {
            var secondRun = await TrainAsync(grpcPort, epochs: 1);
            Assert.Contains("encoded 0, already cached 1797", secondRun, StringComparison.Ordinal);
        }
    }

    private static async Task<IContainer> StartServiceAsync(string volume, int grpcPort, int httpPort)
    {
        var container = new ContainerBuilder(DeployImages.Service)
            .WithCreateParameterModifier(p => p.HostConfig!.NetworkMode = "host")
            .WithEnvironment("EmbedCache__ListenAddress", "127.0.0.1")
            .WithEnvironment("EmbedCache__GrpcPort", grpcPort.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .WithEnvironment("EmbedCache__HttpPort", httpPort.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .WithVolumeMount(volume, "/var/lib/embedcache/save")
            .WithWaitStrategy(ContainerWait.ForUnixContainer().UntilMessageIsLogged("EmbedCache ready"))
            .Build();
        try
        {
            await container.StartAsync();
        }
        catch
        {
            await container.DisposeAsync();
            throw;
        }

        return container;
    }

    private static async Task<string> TrainAsync(int grpcPort, int epochs)
    {
        await using var trainer = new ContainerBuilder(DeployImages.Trainer)
            .WithCreateParameterModifier(p => p.HostConfig!.NetworkMode = "host")
            .WithEnvironment("EMBEDCACHE_SERVICE", $"http://127.0.0.1:{grpcPort}")
            .WithCommand("train", "--dataset", "digits", "--encoder", "random-mlp", "--epochs", epochs.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", "/out/run")
            .Build();
        await trainer.StartAsync();
        var exit = await Until.ForAsync(trainer.GetExitCodeAsync(), "the trainer container to exit", TimeSpan.FromMinutes(5));
        var (stdout, stderr) = await trainer.GetLogsAsync();
        Assert.True(exit == 0, $"trainer exited {exit}\n{stdout}\n{stderr}");
        return stdout + stderr;
    }

    /// <summary>Docker's own view of the HEALTHCHECK (Testcontainers' Health property is not refreshed after start).</summary>
    private static async Task<string> HealthAsync(IContainer container)
    {
        var run = await ProgramRun.RunAsync("docker", ["inspect", "--format", "{{.State.Health.Status}}", container.Id]);
        Assert.True(run.ExitCode == 0, run.ToString());
        return run.Output.Trim();
    }

    private static async Task<string> ExecAsync(IContainer container, params string[] command)
    {
        var result = await container.ExecAsync(command);
        return result.Stdout;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
