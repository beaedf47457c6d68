using System.Text.RegularExpressions;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using EmbedCache.Server.Grpc;
using EmbedCache.TestSupport;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// The shared-memory epoch stream for trainers on the service's host: the same batches as StreamDataset bit for bit,
/// rings that go away with their reader or their service, and only the socket's owner with a key gets one.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class SharedMemoryEpochTests
{
    private const string TrainerKey = "trainer-key-shared-memory-0001";
    private const string AdminKey = "admin-key-shared-memory-000001";

    /// <summary>A service with a Unix socket and its own ring directory; digits prewarmed for three dtypes.</summary>
    private sealed class Fixture : IAsyncDisposable
    {
        private Fixture(TempDirectory dir, InProcessService service)
        {
            Dir = dir;
            Service = service;
        }

        public TempDirectory Dir { get; }

        public InProcessService Service { get; }

        public string Socket => Dir.Combine("embedcache.sock");

        public string Rings => Dir.Combine("rings");

        public static async Task<Fixture> StartAsync(bool prewarm = true, params string[] extra)
        {
            var dir = new TempDirectory("shared-memory");
            Directory.CreateDirectory(dir.Combine("rings"));
            var service = await InProcessService.StartAsync(null,
            [
                $"--EmbedCache:UnixSocketPath={dir.Combine("embedcache.sock")}",
                $"--EmbedCache:SharedMemory:Directory={dir.Combine("rings")}",
                $"--EmbedCache:Auth:TrainerKeys:0={TrainerKey}", $"--EmbedCache:Auth:AdminKeys:0={AdminKey}",
                "--EmbedCache:Encoders:half:Kind=random-mlp", "--EmbedCache:Encoders:half:DType=Float16",
                "--EmbedCache:Encoders:bf:Kind=random-mlp", "--EmbedCache:Encoders:bf:DType=BFloat16",
                .. extra,
            ]);
            var fixture = new Fixture(dir, service);
            if (prewarm)
            {
                using var admin = fixture.Client(AdminKey, SharedMemoryMode.Off, unix: false);
                await foreach (var p in admin.PrewarmAsync(new PrewarmRequest { Dataset = "digits", Splits = { "train" }, Encoders = { "random-mlp", "half", "bf" } }))
                    Assert.NotEqual(JobState.Failed, p.State);
            }

            return fixture;
        }

        public EmbedCacheClient Client(string? key, SharedMemoryMode mode, bool unix = true, List<string>? log = null) => new(new EmbedCacheClientOptions
        {
            Address = unix ? new Uri("unix://" + Socket) : Service.Endpoints.GrpcUri,
            ApiKey = key,
            SharedMemory = mode,
            MaxAttempts = 1,
            Log = log is null ? null : log.Add,
        });

        public async ValueTask DisposeAsync()
        {
            await Service.DisposeAsync();
            Dir.Dispose();
        }
    }

    private static StreamDatasetRequest Request(uint batchSize, bool shuffle, ulong seed, uint epoch, ulong startOffset = 0, bool labels = true) => new()
    {
        Dataset = "digits", Split = "train", Encoders = { "random-mlp", "half", "bf" }, BatchSize = batchSize,
        Shuffle = shuffle, Seed = seed, Epoch = epoch, StartOffset = startOffset, IncludeLabels = labels,
    };

    private static async Task<List<DatasetBatch>> EpochAsync(EmbedCacheClient client, StreamDatasetRequest request, bool pooled)
    {
        var batches = new List<DatasetBatch>();
        var stream = pooled ? client.StreamEpochPooledAsync(request) : client.StreamEpochAsync(request);
        await foreach (var b in stream)
            batches.Add(pooled ? DatasetBatch.Parser.ParseFrom(b.ToByteArray()) : b); // a deep copy while the ring span is still ours
        return batches;
    }

    [Fact]
    public async Task Epochs_EqualStreamDatasetBitForBit_EveryDtypeLabelsShuffleAndResume()
    {
        await using var f = await Fixture.StartAsync();
        var log = new List<string>();
        using var tcp = f.Client(TrainerKey, SharedMemoryMode.Off, unix: false);
        using var shared = f.Client(TrainerKey, SharedMemoryMode.Require, log: log);
        StreamDatasetRequest[] requests =
        [
            Request(256, shuffle: false, seed: 0, epoch: 0),
            Request(100, shuffle: true, seed: 7, epoch: 3),
            Request(1000, shuffle: true, seed: 7, epoch: 4, startOffset: 777),
            Request(64, shuffle: true, seed: 1, epoch: 0, labels: false),
        ];
        foreach (var request in requests)
        {
            var expected = await EpochAsync(tcp, request, pooled: false);
            Assert.Equal(expected, await EpochAsync(shared, request, pooled: false));
            Assert.Equal(expected, await EpochAsync(shared, request, pooled: true));
            Assert.Equal("shared-memory", shared.EpochTransport);
        }

        Assert.Equal(["epoch streams: shared memory (the service is on this host (unix://" + f.Socket + "))"], log);
        Assert.Empty(Directory.GetFiles(f.Rings)); // every ring was unlinked as soon as it was mapped
        var streams = f.Service.Services.GetRequiredService<SharedStreams>();
        Assert.Equal(requests.Length * 2, streams.Total);
        await Wait.UntilAsync(() => streams.Open == 0, "every ring to be closed");
    }

    [Fact]
    public async Task ConcurrentTrainers_EachGetTheirOwnRingAndTheirOwnOrder()
    {
        await using var f = await Fixture.StartAsync();
        using var tcp = f.Client(TrainerKey, SharedMemoryMode.Off, unix: false);
        var requests = Enumerable.Range(0, 4).Select(i => Request(128, shuffle: true, seed: (ulong)i, epoch: (uint)i)).ToArray();
        var expected = await Task.WhenAll(requests.Select(r => EpochAsync(tcp, r, pooled: false)));
        var clients = requests.Select(_ => f.Client(TrainerKey, SharedMemoryMode.Require)).ToArray();
        try
        {
            var actual = await Task.WhenAll(requests.Select((r, i) => EpochAsync(clients[i], r, pooled: true)));
            for (var i = 0; i < requests.Length; i++)
                Assert.Equal(expected[i], actual[i]);
        }
        finally
        {
            foreach (var c in clients)
                c.Dispose();
        }

        Assert.Equal(4, f.Service.Services.GetRequiredService<SharedStreams>().Total);
    }

    [Fact]
    public async Task OverTcp_AndWithoutAKey_NoRingIsGiven()
    {
        await using var f = await Fixture.StartAsync(prewarm: false);
        using var tcp = f.Client(TrainerKey, SharedMemoryMode.Off, unix: false);
        using var call = tcp.Cache.StreamDatasetShared();
        await call.RequestStream.WriteAsync(new SharedStreamMessage { Open = new SharedStreamOpen { Request = Request(64, false, 0, 0) } });
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("Unix socket", e.Status.Detail, StringComparison.Ordinal);

        // Require over TCP is the caller's mistake, said before any call.
        using var required = f.Client(TrainerKey, SharedMemoryMode.Require, unix: false);
        var wrong = await Assert.ThrowsAsync<InvalidOperationException>(async () => await EpochAsync(required, Request(64, false, 0, 0), pooled: true));
        Assert.Contains("not reached over a Unix socket", wrong.Message, StringComparison.Ordinal);

        using var anonymous = f.Client(null, SharedMemoryMode.Require);
        var denied = await Assert.ThrowsAsync<RpcException>(async () => await EpochAsync(anonymous, Request(64, false, 0, 0), pooled: true));
        Assert.Equal(StatusCode.Unauthenticated, denied.StatusCode);
        Assert.Equal(0, f.Service.Services.GetRequiredService<SharedStreams>().Total);
    }

    [Fact]
    public async Task TheRingFile_IsOwnerOnly_AndAnotherUserCannotMapIt()
    {
        await using var f = await Fixture.StartAsync();
        File.SetUnixFileMode(f.Dir.Path, (UnixFileMode)Convert.ToInt32("755", 8)); // traversable: the ring's own mode must refuse
        File.SetUnixFileMode(f.Rings, (UnixFileMode)Convert.ToInt32("755", 8));
        using var client = f.Client(TrainerKey, SharedMemoryMode.Require);
        using var call = client.Cache.StreamDatasetShared();
        await call.RequestStream.WriteAsync(new SharedStreamMessage { Open = new SharedStreamOpen { Request = Request(64, false, 0, 0), RingBytes = 1 << 20 } });
        Assert.True(await call.ResponseStream.MoveNext());
        var ring = call.ResponseStream.Current.Ring;
        Assert.Equal(1UL << 20, ring.Size);
        Assert.StartsWith(f.Rings + "/", ring.Path, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ring.Path));

        var runuser = ProgramRun.FindOnPath("runuser");
        Assert.True(runuser is not null, "runuser (util-linux) is needed to try the ring as another user");
        var other = await ProgramRun.RunAsync(runuser, ["-u", "nobody", "--", "/usr/bin/python3", "-c", $"open('{ring.Path}', 'rb').read(1)"]);
        Assert.NotEqual(0, other.ExitCode);
        Assert.Contains("Permission denied", other.Output + other.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithAUnixSocketGroup_TheRingIsReadableByThatGroup()
    {
        await using var f = await Fixture.StartAsync(false, "--EmbedCache:UnixSocketGroup=daemon");
        using var client = f.Client(TrainerKey, SharedMemoryMode.Require);
        using var call = client.Cache.StreamDatasetShared();
        await call.RequestStream.WriteAsync(new SharedStreamMessage { Open = new SharedStreamOpen { Request = Request(64, false, 0, 0), RingBytes = 1 << 20 } });
        // Nothing is prewarmed: the stream fails before a ring is made. Prewarm, then ask again.
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        using (var admin = f.Client(AdminKey, SharedMemoryMode.Off, unix: false))
        {
            await foreach (var p in admin.PrewarmAsync(new PrewarmRequest { Dataset = "digits", Splits = { "train" }, Encoders = { "random-mlp", "half", "bf" } }))
                Assert.NotEqual(JobState.Failed, p.State);
        }

        using var again = client.Cache.StreamDatasetShared();
        await again.RequestStream.WriteAsync(new SharedStreamMessage { Open = new SharedStreamOpen { Request = Request(64, false, 0, 0), RingBytes = 1 << 20 } });
        Assert.True(await again.ResponseStream.MoveNext());
        var ring = again.ResponseStream.Current.Ring.Path;
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(ring));
        var stat = await ProgramRun.RunAsync("stat", ["-c", "%G", ring]);
        Assert.Equal("daemon", stat.Output.Trim());
    }

    [Fact]
    public async Task AReaderThatStopsReading_IsCutOffAfterTheSlowReaderBudget_AndARingTooSmallIsRefused()
    {
        await using var f = await Fixture.StartAsync(true, "--EmbedCache:SharedMemory:SlowReaderSeconds=1",
            "--EmbedCache:Encoders:wide:Kind=random-mlp", "--EmbedCache:Encoders:wide:Dim=1024");
        using var client = f.Client(TrainerKey, SharedMemoryMode.Require);
        using var call = client.Cache.StreamDatasetShared();
        // 1 MiB ring, batches of 512 rows × 1,024 B (three encoders: 512 + 256 + 256 B per row): two fit, then no acks.
        await call.RequestStream.WriteAsync(new SharedStreamMessage { Open = new SharedStreamOpen { Request = Request(512, false, 0, 0), RingBytes = 1 << 20 } });
        Assert.True(await call.ResponseStream.MoveNext());
        await call.RequestStream.WriteAsync(new SharedStreamMessage { Ack = new SharedStreamAck { Released = 0 } });
        var batches = 0;
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
                batches++;
        });
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("SlowReaderSeconds", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(2, batches);

        using (var admin = f.Client(AdminKey, SharedMemoryMode.Off, unix: false))
        {
            await foreach (var p in admin.PrewarmAsync(new PrewarmRequest { Dataset = "digits", Splits = { "train" }, Encoders = { "wide" } }))
                Assert.NotEqual(JobState.Failed, p.State);
        }

        using var small = f.Client(TrainerKey, SharedMemoryMode.Require);
        var tooBig = new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { "wide" }, BatchSize = 1024 }; // 1,024 × 4 KiB = 4 MiB
        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var c = small.Cache.StreamDatasetShared();
            await c.RequestStream.WriteAsync(new SharedStreamMessage { Open = new SharedStreamOpen { Request = tooBig, RingBytes = 1 << 20 } });
            await c.ResponseStream.MoveNext();
            await c.RequestStream.WriteAsync(new SharedStreamMessage { Ack = new SharedStreamAck { Released = 0 } });
            while (await c.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("more than the shared-memory ring's 1048576", refused.Status.Detail, StringComparison.Ordinal);
        await Wait.UntilAsync(() => f.Service.Services.GetRequiredService<SharedStreams>().Open == 0, "both rings to be closed");
    }

    [Fact]
    public async Task AReaderKilledMidEpoch_ItsRingIsFreed_AndOthersAreServed()
    {
        await using var f = await Fixture.StartAsync();
        var probe = RepoPaths.BuiltTestProgram("ClientProbe", "EmbedCache.ClientProbe");
        using var temp = new TempDirectory("killed-reader");
        using var reader = ChildProcess.Start(probe,
        [
            "epoch", "--service", "unix://" + f.Socket, "--api-key", TrainerKey, "--shared", "require", "--dataset", "digits", "--split", "train",
            "--encoder", "random-mlp", "--batch-size", "64", "--out", temp.Path, "--pause-after", "3",
            "--ring-bytes", "1048576", // 10 batches of 96 KiB: the service waits for ring space while the reader is paused
        ]);
        await reader.WaitForLineAsync(Paused(), "the reader to pause mid-epoch");
        var streams = f.Service.Services.GetRequiredService<SharedStreams>();
        Assert.Equal(1, streams.Open);
        reader.Kill();
        await Wait.UntilAsync(() => streams.Open == 0, "the killed reader's ring to be freed");

        using var client = f.Client(TrainerKey, SharedMemoryMode.Require);
        using var tcp = f.Client(TrainerKey, SharedMemoryMode.Off, unix: false);
        var request = Request(64, true, 5, 5);
        Assert.Equal(await EpochAsync(tcp, request, pooled: false), await EpochAsync(client, request, pooled: true));
        Assert.Empty(Directory.GetFiles(f.Rings));
    }

    [Fact]
    public async Task TheServiceKilledMidEpoch_TheReaderGetsAClearError_AndNoSegmentOutlivesTheRestart()
    {
        using var dir = new TempDirectory("killed-service");
        var rings = dir.Combine("rings");
        Directory.CreateDirectory(rings);
        // Left by a service that died before its trainer mapped the ring (pid 2^22 + 1 is above Linux's pid_max).
        var stale = Path.Combine(rings, "embedcache-ring-4194305-0123456789abcdef");
        File.WriteAllBytes(stale, new byte[4096]);
        string[] args =
        [
            "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Combine("save")}",
            $"--EmbedCache:UnixSocketPath={dir.Combine("s.sock")}", $"--EmbedCache:SharedMemory:Directory={rings}",
        ];
        var serviceDll = RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");
        using (var service = ChildProcess.Start(serviceDll, args))
        {
            var listening = await service.WaitForListeningAsync("the service to start");
            Assert.False(File.Exists(stale), "a ring file of a process that no longer runs is removed at start");
            using var client = new EmbedCacheClient(new EmbedCacheClientOptions { Address = new Uri("unix://" + dir.Combine("s.sock")), SharedMemory = SharedMemoryMode.Require, MaxAttempts = 1 });
            await foreach (var p in client.PrewarmAsync(new PrewarmRequest { Dataset = "digits", Splits = { "train" }, Encoders = { "random-mlp" } }))
                Assert.NotEqual(JobState.Failed, p.State);

            var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { "random-mlp" }, BatchSize = 64 };
            var batches = 0;
            var e = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                await foreach (var b in client.StreamEpochPooledAsync(request))
                {
                    if (++batches == 2)
                        service.Kill();
                }
            });
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.True(batches >= 2);
            Assert.Empty(Directory.GetFiles(rings)); // the ring was unlinked once mapped: nothing to leave behind
            _ = listening;
        }

        using var restarted = ChildProcess.Start(serviceDll, args);
        await restarted.WaitForListeningAsync("the service to restart on its SaveDir and socket path");
        using var again = new EmbedCacheClient(new EmbedCacheClientOptions { Address = new Uri("unix://" + dir.Combine("s.sock")), SharedMemory = SharedMemoryMode.Require });
        var items = 0;
        await foreach (var b in again.StreamEpochPooledAsync(new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { "random-mlp" }, BatchSize = 500 }))
            items += b.Indices.Count;
        Assert.Equal(1438, items);
        Assert.Empty(Directory.GetFiles(rings));
        restarted.Terminate();
        await restarted.WaitForExitAsync("the restarted service to stop");
    }

    [GeneratedRegex("^paused$")]
    private static partial Regex Paused();
}
