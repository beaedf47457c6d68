using System.Net;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace EmbedCache.CacheService.Tests;

/// <summary>What the service answers while its store is not open yet. Child processes, each with its own directories and free ports.</summary>
public sealed class StartupTests
{
    private const string Mlp = "random-mlp";

    private static string ServiceDll => RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");

    private static readonly string[] FreePorts = ["--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0"];

    /// <summary>
    /// A rolling restart: the new instance starts while the old one still holds the SaveDir. With
    /// Store:SaveDirLockWaitSeconds it listens at once and reports why it does not serve yet, answers trainer and
    /// admin calls UNAVAILABLE without hanging, and takes over the store (and its data) when the old one has gone.
    /// </summary>
    [Fact]
    public async Task SecondInstance_WhileTheFirstHoldsTheSaveDir_ListensNotServingWithTheReason_ThenServesTheFirstsData()
    {
        using var dir = new TempDirectory("handover");
        string[] args = [.. FreePorts, $"--EmbedCache:SaveDir={dir.Combine("save")}"];
        using var first = ChildProcess.Start(ServiceDll, args);
        using (var channel = GrpcChannel.ForAddress((await first.WaitForListeningAsync("the first instance to serve")).Grpc))
            await Contract.PrewarmToEndAsync(new Contract(channel).Admin, DigitsTrain());

        using var second = ChildProcess.Start(ServiceDll, [.. args, "--EmbedCache:Store:SaveDirLockWaitSeconds=300"]);
        var addresses = await second.WaitForPortsAsync("the second instance to open its ports");
        await second.WaitForLineAsync(new("SaveDir .* is held by another process; waiting"), "the second instance to wait for the SaveDir");
        using var grpc = GrpcChannel.ForAddress(addresses.Grpc);
        using var http = new HttpClient { BaseAddress = addresses.Http };
        var health = new Health.HealthClient(grpc);
        var contract = new Contract(grpc);
        var deadline = DateTime.UtcNow.AddSeconds(30);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest(), deadline: deadline)).Status);
        using (var healthz = await http.GetAsync(new Uri("/healthz", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, healthz.StatusCode);
            Assert.StartsWith("Unhealthy: recovering the store (waiting up to 300 s for SaveDir", await healthz.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var admin = await Assert.ThrowsAsync<RpcException>(async () => await contract.Admin.CheckpointAsync(new CheckpointRequest(), deadline: deadline));
        Assert.Equal(StatusCode.Unavailable, admin.StatusCode);
        Assert.StartsWith("recovering the store (", admin.Status.Detail, StringComparison.Ordinal);
        var lookup = await Assert.ThrowsAsync<RpcException>(async () =>
            await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 0), deadline: deadline));
        Assert.Equal(StatusCode.Unavailable, lookup.StatusCode);
        Assert.StartsWith("recovering the store (", lookup.Status.Detail, StringComparison.Ordinal);

        first.Terminate();
        Assert.Equal(0, await first.WaitForExitAsync("the first instance to stop after SIGTERM"));
        await Wait.UntilAsync(async () => (await health.CheckAsync(new HealthCheckRequest())).Status == HealthCheckResponse.Types.ServingStatus.Serving,
            "the second instance to serve once the first has gone");
        var response = await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 0, 1, 2, 3));
        Assert.Equal(0x0F, response.Results[0].Found[0] & 0x0F);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode);
    }

    private static PrewarmRequest DigitsTrain()
    {
        var request = new PrewarmRequest { Dataset = "digits", BatchSize = 256, Workers = 1 };
        request.Splits.Add("train");
        request.Encoders.Add(Mlp);
        return request;
    }
}
