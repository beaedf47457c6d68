using System.Net;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// Where the store lives when nothing is configured, and what the service answers while its store is not open yet.
/// Child processes, each with its own directories and free ports.
/// </summary>
public sealed class StartupTests
{
    private const string Mlp = "random-mlp";

    private static string ServiceDll => RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");

    private static readonly string[] FreePorts = ["--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0"];

    [Fact]
    public async Task Service_WithoutSaveDir_PersistsUnderXdgDataHome_SaysWhereAtStartUp_AndServesItAfterARestart()
    {
        using var home = new TempDirectory("xdg");
        var environment = new Dictionary<string, string> { ["XDG_DATA_HOME"] = home.Path };
        var store = home.Combine("embedcache");

        using (var first = ChildProcess.Start(ServiceDll, FreePorts, environment))
        {
            using var channel = GrpcChannel.ForAddress((await first.WaitForListeningAsync()).Grpc);
            Assert.Contains($"Store: {store} (the default SaveDir", first.Output, StringComparison.Ordinal);
            await Contract.PrewarmToEndAsync(new Contract(channel).Admin, DigitsTrain());
            first.Terminate();
            Assert.Equal(0, await first.WaitForExitAsync("the service to stop after SIGTERM"));
        }

        Assert.True(File.Exists(Path.Combine(store, "manifest.json")), $"a committed store in {store}");
        using var second = ChildProcess.Start(ServiceDll, FreePorts, environment);
        using var again = GrpcChannel.ForAddress((await second.WaitForListeningAsync()).Grpc);
        var response = await new Contract(again).Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 0, 1, 2, 3));
        Assert.Equal(0x0F, response.Results[0].Found[0] & 0x0F);
    }

    [Fact]
    public async Task Service_WithoutSaveDirOrXdgDataHome_PutsTheStoreUnderHomeLocalShare()
    {
        using var home = new TempDirectory("home");
        using var child = ChildProcess.Start(ServiceDll, FreePorts,
            new Dictionary<string, string> { ["XDG_DATA_HOME"] = "", ["HOME"] = home.Path });

        await child.WaitForListeningAsync();

        var store = home.Combine(".local", "share", "embedcache");
        Assert.Contains($"Store: {store} (the default SaveDir", child.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(store, "embedcache-store.json")), $"the store's marker in {store}");
    }

    [Fact]
    public async Task Service_WithStoreMemoryOnly_SaysSo_AndWritesNothingToTheDefaultDirectory()
    {
        using var home = new TempDirectory("xdg");
        using var child = ChildProcess.Start(ServiceDll, [.. FreePorts, "--EmbedCache:Store:MemoryOnly=true"],
            new Dictionary<string, string> { ["XDG_DATA_HOME"] = home.Path });

        using var channel = GrpcChannel.ForAddress((await child.WaitForListeningAsync()).Grpc);
        await Contract.PrewarmToEndAsync(new Contract(channel).Admin, DigitsTrain());

        Assert.Contains("Store: memory only (EmbedCache:Store:MemoryOnly=true", child.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(home.Combine("embedcache")), "a memory-only service leaves the default SaveDir alone");
    }

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
