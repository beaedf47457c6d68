using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.Versioning;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using EmbedCache.Server.Configuration;
using EmbedCache.Server.Grpc;
using EmbedCache.Server.Hosting;
using EmbedCache.TestSupport;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.DependencyInjection;

namespace EmbedCache.CacheService.Tests;

/// <summary>gRPC on a Unix domain socket (EmbedCache:UnixSocketPath): the same contract as TCP, guarded by the file's mode.</summary>
[SupportedOSPlatform("linux")]
public sealed class UnixSocketTests
{
    private const string Mlp = "random-mlp";
    private const string TrainerKey = "trainer-key-0123456789abcdef";
    private const string AdminKey = "admin-key-0123456789abcdef0123";

    private static string ServiceDll => RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");

    private static string SocketArg(string path) => $"--EmbedCache:UnixSocketPath={path}";

    private static EmbedCacheClient SocketClient(string path, string? apiKey = null) =>
        new(new EmbedCacheClientOptions { Address = new Uri("unix://" + path), ApiKey = apiKey, MaxAttempts = 1 });

    private static Metadata Bearer(string key) => new() { { "authorization", $"Bearer {key}" } };

    [Fact]
    public async Task OverTheSocket_ListEncodersLookupAndStreamDataset_GiveTheSameBytesAsOverTcp_AndTheSocketGoesAtShutdown()
    {
        using var dir = new TempDirectory("unix");
        var path = dir.Combine("embedcache.sock");
        var service = await InProcessService.StartAsync(null, SocketArg(path));
        try
        {
            Assert.Equal(path, service.Endpoints.UnixSocketPath);
            var tcp = new Contract(service.Channel);
            using var client = SocketClient(path);
            Assert.True(client.IsUnixSocket);
            Assert.Equal(path, client.UnixSocketPath);
            var prewarm = new PrewarmRequest { Dataset = "digits", BatchSize = 128, Workers = 2 };
            prewarm.Splits.Add("train");
            prewarm.Encoders.Add(Mlp);
            await Contract.PrewarmToEndAsync(tcp.Admin, prewarm);

            var encodersTcp = await tcp.Cache.ListEncodersAsync(new ListEncodersRequest());
            var encodersSocket = await client.Cache.ListEncodersAsync(new ListEncodersRequest());
            Assert.Equal(5, encodersSocket.Encoders.Count);
            Assert.Equal(encodersTcp.ToByteArray(), encodersSocket.ToByteArray());

            var lookup = Contract.Positional(Mlp, "digits", "train", 0, 5, 17, 1437);
            lookup.IncludeLabels = true;
            var lookupTcp = await tcp.Cache.LookupAsync(lookup);
            var lookupSocket = await client.Cache.LookupAsync(lookup);
            Assert.True(Contract.IsFound(lookupSocket.Results[0].Found, 3));
            Assert.Equal(lookupTcp.ToByteArray(), lookupSocket.ToByteArray());

            var stream = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 300, Shuffle = true, Seed = 9, Epoch = 2, IncludeLabels = true };
            stream.Encoders.Add(Mlp);
            var batchesTcp = await ReadAll(tcp.Cache.StreamDataset(stream));
            var batchesSocket = await ReadAll(client.Cache.StreamDataset(stream));
            Assert.Equal(5, batchesSocket.Count);
            Assert.Equal(batchesTcp, batchesSocket);
        }
        finally
        {
            await service.DisposeAsync();
        }

        Assert.False(File.Exists(path), "the socket file is removed when the service stops");
    }

    [Fact]
    public async Task OverTheSocket_ApiKeysHold_WithTheSameStatusesAsOverTcp()
    {
        using var dir = new TempDirectory("unix-auth");
        var path = dir.Combine("embedcache.sock");
        await using var service = await InProcessService.StartAsync(null,
            SocketArg(path), $"--EmbedCache:Auth:TrainerKeys:0={TrainerKey}", $"--EmbedCache:Auth:AdminKeys:0={AdminKey}");
        using var client = SocketClient(path);

        static async Task<StatusCode[]> Statuses(Contract c) =>
        [
            await Contract.StatusOf(() => c.Cache.ListEncodersAsync(new ListEncodersRequest()).ResponseAsync),
            await Contract.StatusOf(() => c.Cache.ListEncodersAsync(new ListEncodersRequest(), Bearer("not-a-key-0123456789")).ResponseAsync),
            await Contract.StatusOf(() => c.Admin.GetStatsAsync(new GetStatsRequest(), Bearer(TrainerKey)).ResponseAsync),
            await Contract.StatusOf(() => c.Cache.ListEncodersAsync(new ListEncodersRequest(), Bearer(TrainerKey)).ResponseAsync),
            await Contract.StatusOf(() => c.Admin.GetStatsAsync(new GetStatsRequest(), Bearer(AdminKey)).ResponseAsync),
        ];

        var overSocket = await Statuses(new Contract(client.Channel));

        Assert.Equal([StatusCode.Unauthenticated, StatusCode.Unauthenticated, StatusCode.PermissionDenied, StatusCode.OK, StatusCode.OK], overSocket);
        Assert.Equal(await Statuses(new Contract(service.Channel)), overSocket);
        // The client's ApiKey option works over the socket as over TCP.
        using var trainer = SocketClient(path, TrainerKey);
        Assert.Equal(5, (await trainer.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Count);
    }

    [Theory]
    [InlineData(null, "600")]
    [InlineData("daemon", "660")]
    public async Task TheSocket_IsOwnerOnly_OrSharedWithUnixSocketGroup(string? group, string mode)
    {
        using var dir = new TempDirectory("unix-mode");
        var path = dir.Combine("embedcache.sock");
        string[] args = group is null ? [SocketArg(path)] : [SocketArg(path), $"--EmbedCache:UnixSocketGroup={group}"];
        await using var service = await InProcessService.StartAsync(null, args);

        var stat = await ProgramRun.RunAsync("stat", ["-c", "%a %F %U %G", path]);

        Assert.True(stat.ExitCode == 0, stat.ToString());
        var owner = (await ProgramRun.RunAsync("id", ["-un"])).Output.Trim();
        var ownGroup = (await ProgramRun.RunAsync("id", ["-gn"])).Output.Trim();
        Assert.Equal($"{mode} socket {owner} {group ?? ownGroup}", stat.Output.Trim());
        // Nothing is left of the private directory the socket was bound in.
        Assert.Equal([path], Directory.GetFileSystemEntries(dir.Path));
    }

    [RunAsOtherUserTheory]
    [InlineData(null, false)]
    [InlineData("nogroup", true)]
    public async Task AnotherUser_CannotConnect_UnlessInUnixSocketGroup_WhileTheOwnerCan(string? group, bool otherUserMayConnect)
    {
        using var dir = new TempDirectory("unix-perm");
        // Traversable by anyone, so a refusal comes from the socket's own mode.
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101);
        var path = dir.Combine("embedcache.sock");
        string[] args = group is null ? [SocketArg(path)] : [SocketArg(path), $"--EmbedCache:UnixSocketGroup={group}"];
        await using var service = await InProcessService.StartAsync(null, args);
        const string connect = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])";
        const string reach = "import os, stat, sys; sys.exit(0 if stat.S_ISSOCK(os.stat(sys.argv[1]).st_mode) else 3)";

        var nobodyReaches = await RunAsOtherUserTheoryAttribute.AsNobody(reach, path);
        var nobodyConnects = await RunAsOtherUserTheoryAttribute.AsNobody(connect, path);
        var ownerConnects = await ProgramRun.RunAsync(RunAsOtherUserTheoryAttribute.Python, ["-c", connect, path]);

        Assert.True(nobodyReaches.ExitCode == 0, $"nobody cannot even reach {path}, so the test proves nothing:\n{nobodyReaches}");
        Assert.True(ownerConnects.ExitCode == 0, ownerConnects.ToString());
        if (otherUserMayConnect)
        {
            Assert.True(nobodyConnects.ExitCode == 0, nobodyConnects.ToString());
        }
        else
        {
            Assert.True(nobodyConnects.ExitCode != 0, nobodyConnects.ToString());
            Assert.Contains("Permission denied", nobodyConnects.Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AStaleSocketFile_IsReplacedAtStart()
    {
        using var dir = new TempDirectory("unix-stale");
        var path = dir.Combine("embedcache.sock");
        // .NET unlinks the path a socket was bound to when it is disposed; a crashed process unlinks nothing. So the
        // socket is bound under another name and moved to the path, where it stays when the socket is closed.
        using (var crashed = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            crashed.Bind(new UnixDomainSocketEndPoint(dir.Combine("bound.sock")));
            crashed.Listen();
            File.Move(dir.Combine("bound.sock"), path);
        }

        Assert.True(File.Exists(path), "a socket file with nothing listening on it, as a crashed service leaves");
        Assert.Equal("socket", (await ProgramRun.RunAsync("stat", ["-c", "%F", path])).Output.Trim());

        await using var service = await InProcessService.StartAsync(null, SocketArg(path));
        using var client = SocketClient(path);

        Assert.Equal(5, (await client.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Count);
    }

    [Fact]
    public async Task AFileThatIsNotASocket_IsNeverReplaced_TheServiceRefusesToStart()
    {
        using var dir = new TempDirectory("unix-file");
        var path = dir.Combine("embedcache.sock");
        await File.WriteAllTextAsync(path, "not a socket");

        var e = await Assert.ThrowsAsync<StartupException>(() => InProcessService.StartAsync(null, SocketArg(path)));

        Assert.Equal($"EmbedCache:UnixSocketPath: '{path}' exists and is not a socket; remove it or choose another path", e.Message);
        Assert.Equal("not a socket", await File.ReadAllTextAsync(path));
    }

    [Fact]
    public async Task ALiveSocket_MakesASecondInstanceRefuseToStart_WithOneLineNamingThePath_AndTheFirstKeepsServing()
    {
        using var dir = new TempDirectory("unix-live");
        var path = dir.Combine("embedcache.sock");
        string[] args =
            ["--EmbedCache:ListenAddress=127.0.0.1", "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", "--EmbedCache:Store:MemoryOnly=true", SocketArg(path)];
        using var first = ChildProcess.Start(ServiceDll, args);
        var addresses = await first.WaitForListeningAsync("the first service");
        Assert.Equal(new Uri("unix://" + path), addresses.UnixSocket);

        using var second = ChildProcess.Start(ServiceDll, args);
        var exit = await second.WaitForExitAsync("the second service to refuse the live socket");

        Assert.Equal(2, exit);
        var line = Assert.Single(second.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"EmbedCache: EmbedCache:UnixSocketPath: another process is listening on '{path}' (another EmbedCache instance?); stop it or choose another path", line);
        using (var client = SocketClient(path))
            Assert.Equal(5, (await client.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Count);

        first.Terminate();
        Assert.Equal(0, await first.WaitForExitAsync("the first service to stop on SIGTERM"));
        Assert.False(File.Exists(path), "the socket file is removed when the service stops");
    }

    [Fact]
    public async Task IsUnixSocket_TellsCallsOverTheSocket_FromCallsOverTcp()
    {
        using var dir = new TempDirectory("unix-transport");
        var path = dir.Combine("embedcache.sock");
        var recorder = new TransportRecorder();
        await using var service = await InProcessService.StartWithAsync(builder =>
        {
            builder.Services.AddSingleton(recorder);
            builder.Services.AddGrpc(o => o.Interceptors.Add<TransportRecorder>());
        }, null, SocketArg(path));
        using var client = SocketClient(path);

        await new Contract(service.Channel).Cache.ListEncodersAsync(new ListEncodersRequest());
        await client.Cache.ListEncodersAsync(new ListEncodersRequest());

        Assert.Equal([false, true], recorder.Calls);
    }

    [Theory]
    [InlineData("relative.sock", "EmbedCache:UnixSocketPath must be an absolute path (was 'relative.sock')")]
    [InlineData("/no/such/directory/embedcache.sock", "EmbedCache:UnixSocketPath: directory '/no/such/directory' does not exist")]
    [InlineData("/tmp/", "EmbedCache:UnixSocketPath must name a file, not a directory (was '/tmp/')")]
    public void BadUnixSocketPaths_AreOneLineNamingTheKey(string path, string error)
    {
        var result = new EmbedCacheOptionsValidator().Validate(null, new EmbedCacheOptions { UnixSocketPath = path, Store = { MemoryOnly = true } });

        Assert.Equal([error], result.Failures);
    }

    [Fact]
    public void TooLongUnixSocketPaths_AndBadGroups_AreOneLineNamingTheKey()
    {
        static IEnumerable<string>? Failures(EmbedCacheOptions o) =>
            new EmbedCacheOptionsValidator().Validate(null, o).Failures;
        var longName = "/tmp/" + new string('s', 103);
        var longDirectory = "/tmp/" + new string('d', 91) + "/x.sock";

        Assert.Equal([$"EmbedCache:UnixSocketPath is 108 bytes long; a Unix socket path is at most 107 (was '{longName}')"],
            Failures(new EmbedCacheOptions { UnixSocketPath = longName, Store = { MemoryOnly = true } }));
        Assert.Equal([$"EmbedCache:UnixSocketPath: its directory '{Path.GetDirectoryName(longDirectory)}' is 96 bytes long; at most 95 (the socket is bound in a private directory beside it first)"],
            Failures(new EmbedCacheOptions { UnixSocketPath = longDirectory, Store = { MemoryOnly = true } }));
        Assert.Equal(["EmbedCache:UnixSocketGroup: no group named 'no-such-group-embedcache' on this machine"],
            Failures(new EmbedCacheOptions { UnixSocketPath = "/tmp/x.sock", UnixSocketGroup = "no-such-group-embedcache", Store = { MemoryOnly = true } }));
        Assert.Equal(["EmbedCache:UnixSocketGroup is set but EmbedCache:UnixSocketPath is not"],
            Failures(new EmbedCacheOptions { UnixSocketGroup = "daemon", Store = { MemoryOnly = true } }));
    }

    [Theory]
    [InlineData("unix:///run/embedcache.sock", "/run/embedcache.sock")]
    [InlineData("unix:/run/embedcache.sock", "/run/embedcache.sock")]
    [InlineData("unix:///tmp/a%20b.sock", "/tmp/a b.sock")]
    [InlineData("http://127.0.0.1:50051", null)]
    [InlineData("https://cache.example:443", null)]
    public void ClientAddresses_HttpHttpsAndUnix_Parse(string text, string? socketPath)
    {
        Assert.True(EmbedCacheClientOptions.TryParseAddress(text, out var address));
        Assert.Equal(socketPath, new EmbedCacheClientOptions { Address = address }.UnixSocketPath);
    }

    [Theory]
    [InlineData("unix:relative.sock")]
    [InlineData("unix://host/run/embedcache.sock")]
    [InlineData("unix:///")]
    [InlineData("ftp://127.0.0.1:50051")]
    [InlineData("127.0.0.1:50051")]
    public void ClientAddresses_Others_DoNotParse(string text) =>
        Assert.False(EmbedCacheClientOptions.TryParseAddress(text, out _));

    [Fact]
    public void AUnixAddress_WithAHandlerThatCannotReachTheSocket_IsRefused_AndASocketsHandlerIsUsed()
    {
        var unix = new Uri("unix:///run/embedcache.sock");

        var e = Assert.Throws<ArgumentException>(() => new EmbedCacheClient(new EmbedCacheClientOptions { Address = unix, HttpHandler = new HttpClientHandler() }));
        Assert.Contains("SocketsHttpHandler", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new EmbedCacheClient(new EmbedCacheClientOptions { Address = new Uri("unix:relative.sock") }));

        var sockets = new SocketsHttpHandler();
        using var client = new EmbedCacheClient(new EmbedCacheClientOptions { Address = unix, HttpHandler = sockets });
        Assert.NotNull(sockets.ConnectCallback);
        Assert.Equal("/run/embedcache.sock", client.UnixSocketPath);
        using var tcp = new EmbedCacheClient(new Uri("http://127.0.0.1:50051"));
        Assert.False(tcp.IsUnixSocket);
    }

    private static async Task<List<byte[]>> ReadAll(AsyncServerStreamingCall<DatasetBatch> call)
    {
        using (call)
        {
            var all = new List<byte[]>();
            await foreach (var batch in call.ResponseStream.ReadAllAsync())
                all.Add(batch.ToByteArray());
            return all;
        }
    }

    /// <summary>Records, per unary call, whether it came over the Unix socket.</summary>
    private sealed class TransportRecorder : Interceptor
    {
        private readonly ConcurrentQueue<bool> _calls = new();

        public bool[] Calls => [.. _calls];

        public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
            TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
        {
            _calls.Enqueue(context.IsUnixSocket());
            return continuation(request, context);
        }
    }
}

/// <summary>
/// A theory that runs programs as the user <c>nobody</c> (runuser or setpriv, as root). Skipped, naming what is
/// missing, where that cannot be done.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RunAsOtherUserTheoryAttribute : TheoryAttribute
{
    public const string Python = "/usr/bin/python3";

    public RunAsOtherUserTheoryAttribute()
    {
        if (Environment.UserName != "root")
            Skip = $"runs programs as another user, which needs root (this is {Environment.UserName})";
        else if (Runuser is null && Setpriv is null)
            Skip = "neither runuser nor setpriv is on PATH (util-linux), so nothing can run as another user";
        else if (!File.Exists(Python))
            Skip = $"{Python} is missing (it plays the other user's client)";
    }

    private static string? Runuser => ProgramRun.FindOnPath("runuser");

    private static string? Setpriv => ProgramRun.FindOnPath("setpriv");

    /// <summary>Runs <c>python3 -c <paramref name="script"/> <paramref name="argument"/></c> as nobody:nogroup.</summary>
    public static Task<ProgramRun.Result> AsNobody(string script, string argument) =>
        Runuser is { } runuser
            ? ProgramRun.RunAsync(runuser, ["-u", "nobody", "--", Python, "-c", script, argument], "/")
            : ProgramRun.RunAsync(Setpriv!, ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--", Python, "-c", script, argument], "/");
}
