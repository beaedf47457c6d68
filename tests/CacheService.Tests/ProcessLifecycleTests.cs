using EmbedCache.CacheClient;
using EmbedCache.TestSupport;
using Grpc.Health.V1;

namespace EmbedCache.CacheService.Tests;

/// <summary>The built service as a child process: start, serve, stop on SIGTERM, refuse bad config.</summary>
public sealed class ProcessLifecycleTests
{
    private static string ServiceDll => RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");

    [Fact]
    public async Task Service_StartedAsProcess_ServesHealthAndStopsCleanlyOnSigterm()
    {
        using var dir = new TempDirectory("proc");
        using var child = ChildProcess.Start(ServiceDll,
            ["--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Path}"]);

        var listening = await child.WaitForListeningAsync("the service to report its ports");
        using (var client = new EmbedCacheClient(listening.Grpc))
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, await client.CheckHealthAsync());
        using (var http = new HttpClient())
            Assert.Equal("Healthy", await http.GetStringAsync(new Uri(listening.Http, "/healthz")));

        using (var probe = ChildProcess.Start(ServiceDll, ["healthcheck", new Uri(listening.Http, "/healthz").ToString()]))
            Assert.Equal(0, await probe.WaitForExitAsync("the healthcheck probe"));

        child.Terminate();
        var exit = await child.WaitForExitAsync("the service to exit after SIGTERM");

        Assert.Equal(0, exit);
        Assert.Contains("EmbedCache stopping", child.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_WithOutOfRangePort_ExitsWithOneLineNamingTheKey()
    {
        using var child = ChildProcess.Start(ServiceDll, ["--EmbedCache:GrpcPort=70000", "--EmbedCache:HttpPort=0"]);

        var exit = await child.WaitForExitAsync("the service to refuse its configuration");

        Assert.Equal(2, exit);
        var errorLines = child.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(errorLines);
        Assert.Contains("EmbedCache:GrpcPort", line, StringComparison.Ordinal);
        Assert.Contains("70000", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not-onnx", "is not a loadable ONNX model")]
    [InlineData("bad-input", "has no input 'pixels' (InputName)")]
    [InlineData("bad-dim", "outputs dim 384, but Dim is set to 100")]
    public async Task Service_WithABadOnnxEncoder_ExitsWithOneLineNamingTheEncoder(string problem, string expected)
    {
        using var dir = new TempDirectory("onnx");
        var model = Path.Combine(AppContext.BaseDirectory, "models", "all-minilm-l6-v2", "model.onnx");
        var vocab = Path.Combine(AppContext.BaseDirectory, "models", "all-minilm-l6-v2", "vocab.txt");
        string[] encoder = problem switch
        {
            "not-onnx" => ["--EmbedCache:Encoders:mine:ModelPath=" + vocab, "--EmbedCache:Encoders:mine:VocabPath=" + vocab],
            "bad-input" => ["--EmbedCache:Encoders:mine:ModelPath=" + model, "--EmbedCache:Encoders:mine:InputKind=FloatTensor",
                "--EmbedCache:Encoders:mine:InputShape:0=8", "--EmbedCache:Encoders:mine:InputName=pixels"],
            _ => ["--EmbedCache:Encoders:mine:ModelPath=" + model, "--EmbedCache:Encoders:mine:VocabPath=" + vocab,
                "--EmbedCache:Encoders:mine:Pooling=mean", "--EmbedCache:Encoders:mine:Dim=100"],
        };
        using var child = ChildProcess.Start(ServiceDll,
        [
            "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Combine("save")}",
            "--EmbedCache:Encoders:mine:Kind=onnx", "--EmbedCache:Encoders:mine:InputKind=Text", .. encoder,
        ]);

        var exit = await child.WaitForExitAsync("the service to refuse a bad ONNX encoder");

        Assert.Equal(2, exit);
        var line = Assert.Single(child.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("encoder 'mine'", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_WithMissingConfigFile_ExitsNamingTheFile()
    {
        using var dir = new TempDirectory("cfg");
        var missing = dir.Combine("nope.json");
        using var child = ChildProcess.Start(ServiceDll, ["--config", missing]);

        var exit = await child.WaitForExitAsync("the service to refuse a missing --config file");

        Assert.Equal(2, exit);
        Assert.Contains(missing, child.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigFile_OverridesAppsettings_AndEnvironmentOverridesConfigFile()
    {
        using var dir = new TempDirectory("cfg");
        var file = dir.Combine("embedcache.json");
        // The file's ports are invalid: the service only starts if the environment wins over it,
        // and its HTTP port is 0 only if the file wins over appsettings.json (8080).
        await File.WriteAllTextAsync(file, """{ "EmbedCache": { "GrpcPort": 99999, "HttpPort": 0 } }""");
        using var child = ChildProcess.Start(ServiceDll, ["--config", file],
            new Dictionary<string, string> { ["EmbedCache__GrpcPort"] = "0", ["EmbedCache__SaveDir"] = dir.Combine("save") });

        var listening = await child.WaitForListeningAsync("the service to start with layered config");

        Assert.NotEqual("8080", listening.Http.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        child.Terminate();
        Assert.Equal(0, await child.WaitForExitAsync("the service to exit after SIGTERM"));
    }
}
