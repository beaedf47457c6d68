using System.Text;
using System.Text.RegularExpressions;
using EmbedCache.Contract.V1;
using EmbedCache.Server.Hosting;
using EmbedCache.Server.Hosting.Security;
using EmbedCache.TestSupport;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// The README's error list (section "The contract"), walked: every status it documents is provoked here on a real
/// service over loopback, RPC by RPC, and each answer must carry that status and a message that names the problem,
/// no server path, and no more than a few hundred bytes.
/// </summary>
public sealed partial class ErrorContractTests
{
    private const string Mlp = "random-mlp";
    private const int TrainItems = 1438;
    private const int VectorLength = 64;
    private const int MaxMessageBytes = 300;
    private const string TrainerKey = "trainer-key-of-the-error-contract";
    private const string AdminKey = "admin-key-of-the-error-contract";
    private const string Caller = "peer:ipv4:127.0.0.1";

    /// <summary>A request that must fail: the scene it runs in, its status, and what its message must name.</summary>
    private sealed record Case(string Scene, string Name, StatusCode Expected, Func<Scene, Task> Call, params string[] Names);

    private static readonly Case[] Cases =
    [
        // ---- INVALID_ARGUMENT, naming the field
        new("requests", "Lookup without encoders", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(new LookupRequest { Keys = Contract.Custom(Mlp, "a").Keys }).ResponseAsync, "encoders"),
        new("requests", "Lookup without a key scheme", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(new LookupRequest { Encoders = { Mlp } }).ResponseAsync, "keys", "key scheme"),
        new("requests", "Lookup of an empty batch", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(Contract.Custom(Mlp)).ResponseAsync, "keys.custom.keys", "empty"),
        new("requests", "Lookup of a 300-byte custom key", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(Contract.Custom(Mlp, new string('k', 300))).ResponseAsync, "keys.custom.keys[0]", "300"),
        new("requests", "Lookup of a 300-byte dataset name", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(Contract.Positional(Mlp, new string('d', 300), "train", 0)).ResponseAsync, "keys.positional.dataset", "255"),
        new("requests", "Lookup with item_shape [2^62, 2^62]", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(HugeShape()).ResponseAsync, "features.tensor.item_shape", "4611686018427387904x4611686018427387904"),
        new("requests", "GetEmbeddings with item_shape [2^62, 2^62]", StatusCode.InvalidArgument,
            s => DuplexAsync(s, HugeShape()), "features.tensor.item_shape", "4611686018427387904x4611686018427387904"),
        new("requests", "Lookup with a 17-dimensional item_shape", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(WithShape([.. Enumerable.Repeat(1L, 16), VectorLength])).ResponseAsync, "features.tensor.item_shape", "17 dimensions"),
        new("requests", "Lookup with features of the wrong size for the encoder", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(WithShape([VectorLength + 1], VectorLength + 1)).ResponseAsync, "features.tensor.item_shape", Mlp),
        new("requests", "Lookup with NaN features", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(NaNFeatures()).ResponseAsync, "NaN"),
        new("requests", "Lookup with include_labels on custom keys", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(new LookupRequest { Encoders = { Mlp }, Keys = Contract.Custom(Mlp, "a").Keys, IncludeLabels = true }).ResponseAsync,
            "include_labels"),
        new("requests", "Lookup with a content hash that is not the features'", StatusCode.InvalidArgument,
            s => s.Contract.Cache.LookupAsync(PoisonedContentKey()).ResponseAsync, "keys.content.hashes[0]"),
        new("requests", "StreamDataset of an empty dataset name", StatusCode.InvalidArgument,
            s => ReadAllAsync(s, Stream("", "train")), "dataset", "empty"),
        new("requests", "StreamDataset of a split the dataset does not have", StatusCode.InvalidArgument,
            s => ReadAllAsync(s, Stream("digits", "nope")), "split", "'nope'", "train, val"),
        new("requests", "StreamDataset of a path outside the data root", StatusCode.InvalidArgument,
            s => ReadAllAsync(s, Stream("../etc", "train")), "'../etc'", "outside the data root"),
        new("requests", "Prewarm of a split the dataset does not have", StatusCode.InvalidArgument,
            s => PrewarmAsync(s, new PrewarmRequest { Dataset = "digits", Splits = { "nope" } }), "splits", "'nope'"),
        new("requests", "Prewarm for an encoder that does not take the dataset's features", StatusCode.InvalidArgument,
            s => PrewarmAsync(s, new PrewarmRequest { Dataset = "digits", Encoders = { "random-minilm" } }), "encoders", "random-minilm"),
        new("requests", "Prewarm with an absurd batch_size", StatusCode.InvalidArgument,
            s => PrewarmAsync(s, new PrewarmRequest { Dataset = "digits", Encoders = { Mlp }, BatchSize = uint.MaxValue }), "batch_size"),
        new("requests", "DropNamespace of a malformed fingerprint", StatusCode.InvalidArgument,
            s => s.Contract.Admin.DropNamespaceAsync(new DropNamespaceRequest { Fingerprint = "xyz" }).ResponseAsync, "fingerprint", "32 hex digits"),
        new("requests", "CancelJob without a job id", StatusCode.InvalidArgument,
            s => s.Contract.Admin.CancelJobAsync(new CancelJobRequest()).ResponseAsync, "job_id"),

        // ---- NOT_FOUND
        new("requests", "Lookup for an unknown encoder", StatusCode.NotFound,
            s => s.Contract.Cache.LookupAsync(Contract.Custom("nope", "a")).ResponseAsync, "unknown encoder 'nope'", Mlp),
        new("requests", "StreamDataset for an unknown encoder", StatusCode.NotFound,
            s => ReadAllAsync(s, new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { "nope" } }), "unknown encoder 'nope'"),
        new("requests", "StreamDataset of an unknown dataset", StatusCode.NotFound,
            s => ReadAllAsync(s, Stream("nope", "train")), "unknown dataset 'nope'"),
        new("requests", "StreamDataset of an unknown dataset, filling what is missing", StatusCode.NotFound,
            s => ReadAllAsync(s, Stream("nope", "train", fill: true)), "unknown dataset 'nope'"),
        new("requests", "Prewarm of an unknown dataset", StatusCode.NotFound,
            s => PrewarmAsync(s, new PrewarmRequest { Dataset = "nope" }), "unknown dataset 'nope'"),
        new("requests", "DropNamespace of a fingerprint nothing is stored under", StatusCode.NotFound,
            s => s.Contract.Admin.DropNamespaceAsync(new DropNamespaceRequest { Fingerprint = new string('0', 32) }).ResponseAsync, "no stored namespace"),
        new("requests", "CancelJob of an unknown job", StatusCode.NotFound,
            s => s.Contract.Admin.CancelJobAsync(new CancelJobRequest { JobId = "nope" }).ResponseAsync, "no job 'nope'"),

        // ---- OUT_OF_RANGE, naming the split's size
        new("requests", "Lookup of an index past the end of a cached split", StatusCode.OutOfRange,
            s => s.Contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 0, TrainItems)).ResponseAsync,
            "keys.positional.indices[1]", $"index {TrainItems}", "'train'", $"{TrainItems} items"),
        new("requests", "GetEmbeddings of an index past the end of a cached split", StatusCode.OutOfRange,
            s => DuplexAsync(s, Contract.Positional(Mlp, "digits", "train", 5000)), "keys.positional.indices[0]", $"{TrainItems} items"),
        new("requests", "StreamDataset from a start_offset past the end", StatusCode.OutOfRange,
            s => ReadAllAsync(s, new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { Mlp }, StartOffset = TrainItems + 1 }),
            "start_offset", $"{TrainItems} items"),

        // ---- FAILED_PRECONDITION
        new("requests", "StreamDataset of a split that is not prewarmed", StatusCode.FailedPrecondition,
            s => ReadAllAsync(s, Stream("digits", "val")), "'val'", "not cached"),
        new("requests", "StreamDataset for an encoder the split is not cached for", StatusCode.FailedPrecondition,
            s => ReadAllAsync(s, new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { "random-convnet" } }),
            "not cached for encoder 'random-convnet'"),
        new("requests", "Prewarm of a registered dataset whose directory is missing", StatusCode.FailedPrecondition,
            s => PrewarmAsync(s, new PrewarmRequest { Dataset = "ghost" }), "'ghost'", "Datasets:ghost", "does not exist"),
        new("requests", "StreamDataset of a registered dataset whose directory is missing", StatusCode.FailedPrecondition,
            s => ReadAllAsync(s, Stream("ghost", "train")), "'ghost'", "does not exist"),

        // ---- RESOURCE_EXHAUSTED, naming the limit's key and value
        new("requests", "Lookup of more keys than Limits:MaxKeysPerRequest", StatusCode.ResourceExhausted,
            s => s.Contract.Cache.LookupAsync(ManyKeys(101)).ResponseAsync, "Limits:MaxKeysPerRequest = 100"),
        new("requests", "GetEmbeddings of more keys than Limits:MaxKeysPerRequest", StatusCode.ResourceExhausted,
            s => DuplexAsync(s, ManyKeys(101)), "Limits:MaxKeysPerRequest = 100"),
        new("requests", "Lookup with more feature bytes than Limits:MaxFeatureBytesPerRequest", StatusCode.ResourceExhausted,
            s => s.Contract.Cache.LookupAsync(LongText(70_000)).ResponseAsync, "Limits:MaxFeatureBytesPerRequest", "65536"),
        new("requests", "StreamDataset with a batch_size above Limits:MaxStreamBatchSize", StatusCode.ResourceExhausted,
            s => ReadAllAsync(s, new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { Mlp }, BatchSize = 9000 }),
            "batch_size", "Limits:MaxStreamBatchSize = 8192"),
        new("requests", "Prewarm with more workers than Jobs:MaxWorkers", StatusCode.ResourceExhausted,
            s => PrewarmAsync(s, new PrewarmRequest { Dataset = "digits", Encoders = { Mlp }, Workers = 3 }), "workers", "Jobs:MaxWorkers = 2"),
        new("requests", "A third streaming call with Limits:MaxConcurrentStreamsPerCaller = 2", StatusCode.ResourceExhausted,
            ThirdStreamAsync, "Limits:MaxConcurrentStreamsPerCaller = 2"),
        new("requests", "Lookup larger than Limits:MaxReceiveMessageBytes", StatusCode.ResourceExhausted,
            s => s.Contract.Cache.LookupAsync(LongText(1_100_000)).ResponseAsync, "exceeds the maximum configured message size"),
        new("requests", "GetEmbeddings message larger than Limits:MaxReceiveMessageBytes", StatusCode.ResourceExhausted,
            s => DuplexAsync(s, LongText(1_100_000)), "Limits:MaxReceiveMessageBytes"),

        // ---- DATA_LOSS: the scene flipped a byte of the stored row of custom key "victim"
        new("data-loss", "Lookup of a stored row that fails its checksum", StatusCode.DataLoss,
            s => s.Contract.Cache.LookupAsync(Contract.Custom(Mlp, "victim")).ResponseAsync, "checksum"),
        new("data-loss", "GetEmbeddings of a stored row that fails its checksum", StatusCode.DataLoss,
            s => DuplexAsync(s, Contract.Custom(Mlp, "victim")), "checksum"),

        // ---- UNAVAILABLE: the scene has begun shutting the engine down
        new("shutdown", "ListEncoders while shutting down", StatusCode.Unavailable,
            s => s.Contract.Cache.ListEncodersAsync(new ListEncodersRequest()).ResponseAsync, "shutting down"),
        new("shutdown", "Lookup while shutting down", StatusCode.Unavailable,
            s => s.Contract.Cache.LookupAsync(Contract.Custom(Mlp, "a")).ResponseAsync, "shutting down"),
        new("shutdown", "GetStats while shutting down", StatusCode.Unavailable,
            s => s.Contract.Admin.GetStatsAsync(new GetStatsRequest()).ResponseAsync, "shutting down"),

        // ---- UNAUTHENTICATED, PERMISSION_DENIED: the scene's service has API keys
        new("auth", "ListEncoders without a key", StatusCode.Unauthenticated,
            s => s.Contract.Cache.ListEncodersAsync(new ListEncodersRequest()).ResponseAsync, "API key"),
        new("auth", "ListEncoders with an unknown key", StatusCode.Unauthenticated,
            s => s.Contract.Cache.ListEncodersAsync(new ListEncodersRequest(), Bearer("not-a-key-of-this-service")).ResponseAsync, "not valid"),
        new("auth", "GetStats with a trainer key", StatusCode.PermissionDenied,
            s => s.Contract.Admin.GetStatsAsync(new GetStatsRequest(), Bearer(TrainerKey)).ResponseAsync, "admin key"),
    ];

    public static TheoryData<string> Scenes => new(Cases.Select(c => c.Scene).Distinct());

    [Fact]
    public void ReadmeErrorList_DocumentsExactlyTheStatusesTheWalkProvokes()
    {
        var documented = DocumentedStatuses();
        var walked = Cases.Select(c => c.Expected).Distinct().ToHashSet();

        Assert.True(documented.Count >= 8, $"the README's error list was not found or is short: {string.Join(", ", documented)}");
        Assert.Equal(documented.Order(), walked.Order());
    }

    [Theory]
    [MemberData(nameof(Scenes))]
    public async Task EveryDocumentedError_IsAnsweredWithItsStatus_AndAShortMessageNamingTheProblem(string scene)
    {
        await using var s = await Scene.StartAsync(scene);
        var failures = new List<string>();
        foreach (var c in Cases.Where(c => c.Scene == scene))
        {
            var (code, detail) = await Contract.StatusAndDetail(() => c.Call(s));
            if (code != c.Expected)
                failures.Add($"{c.Name}: expected {c.Expected}, got {code} ({detail})");
            foreach (var name in c.Names)
            {
                if (!detail.Contains(name, StringComparison.Ordinal))
                    failures.Add($"{c.Name}: the message does not name {name}: {detail}");
            }

            if (Encoding.UTF8.GetByteCount(detail) > MaxMessageBytes)
                failures.Add($"{c.Name}: the message has {Encoding.UTF8.GetByteCount(detail)} bytes");
            foreach (var path in s.ServerPaths)
            {
                if (detail.Contains(path, StringComparison.Ordinal))
                    failures.Add($"{c.Name}: the message names the server path {path}: {detail}");
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    /// <summary>
    /// 64 KB request values (names, ids, keys, shapes) on every RPC that takes one, through a client that accepts
    /// 8 KB of response metadata, as gRPC clients do by default: each gets its real status, with the value cut.
    /// </summary>
    [Fact]
    public async Task LongRequestValues_AreCutInStatusMessages_SoAClientWith8KBOfMetadataSeesTheRealStatus()
    {
        await using var service = await InProcessService.StartAsync();
        using var channel = GrpcChannel.ForAddress(service.Endpoints.GrpcUri,
            new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { MaxResponseHeadersLength = 8 } });
        var c = new Contract(channel);
        var huge = new string('a', 65536);
        var cases = new (string Name, StatusCode Expected, Func<Task> Call)[]
        {
            ("Lookup: encoder", StatusCode.NotFound, () => c.Cache.LookupAsync(Contract.Custom(huge, "a")).ResponseAsync),
            ("Lookup: positional dataset", StatusCode.InvalidArgument, () => c.Cache.LookupAsync(Contract.Positional(Mlp, huge, "train", 0)).ResponseAsync),
            ("Lookup: positional split", StatusCode.InvalidArgument, () => c.Cache.LookupAsync(Contract.Positional(Mlp, "digits", huge, 0)).ResponseAsync),
            ("Lookup: custom key", StatusCode.InvalidArgument, () => c.Cache.LookupAsync(Contract.Custom(Mlp, huge)).ResponseAsync),
            ("Lookup: item_shape", StatusCode.InvalidArgument, () => c.Cache.LookupAsync(WithShape([.. Enumerable.Repeat(long.MaxValue, 16)])).ResponseAsync),
            ("Lookup: item_shape dimensions", StatusCode.InvalidArgument, () => c.Cache.LookupAsync(WithShape([.. Enumerable.Repeat(1L, 65536)])).ResponseAsync),
            ("StreamDataset: dataset", StatusCode.InvalidArgument, () => ReadAllAsync(c, Stream(huge, "train"))),
            ("StreamDataset: split", StatusCode.InvalidArgument, () => ReadAllAsync(c, Stream("digits", huge))),
            ("StreamDataset: encoder", StatusCode.NotFound, () => ReadAllAsync(c, new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { huge } })),
            ("Prewarm: dataset", StatusCode.NotFound, () => Contract.PrewarmToEndAsync(c.Admin, new PrewarmRequest { Dataset = huge })),
            ("Prewarm: split", StatusCode.InvalidArgument, () => Contract.PrewarmToEndAsync(c.Admin, new PrewarmRequest { Dataset = "digits", Splits = { huge } })),
            ("Prewarm: encoder", StatusCode.NotFound, () => Contract.PrewarmToEndAsync(c.Admin, new PrewarmRequest { Dataset = "digits", Encoders = { huge } })),
            ("DropNamespace: encoder", StatusCode.NotFound, () => c.Admin.DropNamespaceAsync(new DropNamespaceRequest { Encoder = huge }).ResponseAsync),
            ("DropNamespace: fingerprint", StatusCode.InvalidArgument, () => c.Admin.DropNamespaceAsync(new DropNamespaceRequest { Fingerprint = huge }).ResponseAsync),
            ("CancelJob: job id", StatusCode.NotFound, () => c.Admin.CancelJobAsync(new CancelJobRequest { JobId = huge }).ResponseAsync),
        };

        var failures = new List<string>();
        foreach (var (name, expected, call) in cases)
        {
            var (code, detail) = await Contract.StatusAndDetail(call);
            var bytes = Encoding.UTF8.GetByteCount(detail);
            if (code != expected || bytes > MaxMessageBytes || detail.Contains(new string('a', 100), StringComparison.Ordinal))
                failures.Add($"{name}: expected {expected} with a short message, got {code} ({bytes} bytes: {Shorten(detail)})");
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [Fact]
    public void EchoedValues_AreQuoted_AndLongOnesCutToAPrefixWithTheirLength()
    {
        Assert.Equal("'digits'", EmbedCache.Engine.Echo.Quote("digits"));
        Assert.Equal($"'{new string('a', 24)}…' (65536 chars)", EmbedCache.Engine.Echo.Quote(new string('a', 65536)));
        Assert.Equal("3x32x32", EmbedCache.Engine.Echo.Shape([3, 32, 32]));
        Assert.EndsWith("… (65536 dimensions)", EmbedCache.Engine.Echo.Shape([.. Enumerable.Repeat(1L, 65536)]), StringComparison.Ordinal);

        // A cut never splits a surrogate pair.
        var emoji = new string('a', 23) + "😀" + new string('b', 100);
        Assert.Equal($"'{new string('a', 23)}…' (125 chars)", EmbedCache.Engine.Echo.Quote(emoji));
    }

    // ------------------------------------------------------------------ the README

    [GeneratedRegex(@"^\s+- ((?:`[A-Z_]+`(?:, )?)+)", RegexOptions.CultureInvariant)]
    private static partial Regex StatusBullet();

    [GeneratedRegex("`([A-Z_]+)`", RegexOptions.CultureInvariant)]
    private static partial Regex StatusName();

    /// <summary>The statuses of the sub-bullets under "- Errors" in the README's section "The contract".</summary>
    private static HashSet<StatusCode> DocumentedStatuses()
    {
        var lines = File.ReadAllLines(Path.Combine(RepoPaths.Root, "README.md"));
        var start = Array.FindIndex(lines, l => l.StartsWith("## The contract", StringComparison.Ordinal));
        Assert.True(start >= 0, "README.md has no section \"The contract\"");
        var errors = Array.FindIndex(lines, start, l => l.StartsWith("- Errors", StringComparison.Ordinal));
        Assert.True(errors >= 0, "the contract section has no \"- Errors\" list");
        var statuses = new HashSet<StatusCode>();
        for (var i = errors + 1; i < lines.Length && lines[i].StartsWith(' '); i++)
        {
            var bullet = StatusBullet().Match(lines[i]);
            if (!bullet.Success)
                continue;
            foreach (Match name in StatusName().Matches(bullet.Groups[1].Value))
                statuses.Add(Enum.Parse<StatusCode>(name.Groups[1].Value.Replace("_", "", StringComparison.Ordinal), ignoreCase: true));
        }

        return statuses;
    }

    // ------------------------------------------------------------------ scenes

    /// <summary>A service set up so that the cases of one scene can provoke their status.</summary>
    private sealed class Scene : IAsyncDisposable
    {
        private readonly TempDirectory? _dir;

        private Scene(InProcessService service, TempDirectory? dir)
        {
            Service = service;
            _dir = dir;
            Contract = new Contract(service.Channel);
            ServerPaths = [RepoPaths.Root, AppContext.BaseDirectory.TrimEnd('/'), Path.GetTempPath().TrimEnd('/') + "/embedcache-tests"];
        }

        public InProcessService Service { get; }

        public Contract Contract { get; }

        /// <summary>Directories of the server's file layout that no message may name.</summary>
        public string[] ServerPaths { get; }

        public static async Task<Scene> StartAsync(string name)
        {
            switch (name)
            {
                case "requests":
                {
                    var service = await InProcessService.StartAsync(null,
                        "--EmbedCache:Datasets:ghost=no-such-directory",
                        "--EmbedCache:Limits:MaxKeysPerRequest=100",
                        "--EmbedCache:Limits:MaxFeatureBytesPerRequest=65536",
                        "--EmbedCache:Limits:MaxReceiveMessageBytes=1048576",
                        "--EmbedCache:Limits:MaxConcurrentStreamsPerCaller=2",
                        "--EmbedCache:Jobs:MaxWorkers=2");
                    var scene = new Scene(service, null);
                    var prewarm = new PrewarmRequest { Dataset = "digits", Splits = { "train" }, Encoders = { Mlp }, BatchSize = 256 };
                    Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(scene.Contract.Admin, prewarm))[^1].State);
                    return scene;
                }

                case "data-loss":
                {
                    var dir = new TempDirectory("data-loss");
                    string[] args = ["--EmbedCache:Store:DefaultTier=Cpu"];
                    var victim = Contract.Custom(Mlp, "victim");
                    victim.Features = Contract.Vectors(VectorLength, Contract.Vector(VectorLength, 3));
                    byte[] row;
                    await using (var first = await InProcessService.StartAsync(dir.Path, args))
                        row = (await new Contract(first.Channel).Cache.LookupAsync(victim)).Results[0].Embeddings.ToByteArray();

                    // Stopping took the shutdown checkpoint: the row is in the store's files. Flip a byte of it there.
                    var flipped = 0;
                    foreach (var file in Directory.EnumerateFiles(dir.Path, "*", SearchOption.AllDirectories))
                    {
                        var bytes = await File.ReadAllBytesAsync(file);
                        var at = bytes.AsSpan().IndexOf(row);
                        if (at < 0)
                            continue;
                        bytes[at + (row.Length / 2)] ^= 0x10;
                        await File.WriteAllBytesAsync(file, bytes);
                        flipped++;
                    }

                    Assert.True(flipped > 0, "the stored row was not found in the SaveDir");
                    return new Scene(await InProcessService.StartAsync(dir.Path, args), dir);
                }

                case "shutdown":
                {
                    var service = await InProcessService.StartAsync();
                    await service.Services.GetRequiredService<EngineHost>().StopAsync(CancellationToken.None);
                    return new Scene(service, null);
                }

                case "auth":
                    return new Scene(await InProcessService.StartAsync(null,
                        $"--EmbedCache:Auth:TrainerKeys:0={TrainerKey}", $"--EmbedCache:Auth:AdminKeys:0={AdminKey}"), null);

                default:
                    throw new ArgumentException($"no scene '{name}'", nameof(name));
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Service.DisposeAsync();
            _dir?.Dispose();
        }
    }

    // ------------------------------------------------------------------ requests

    private static Metadata Bearer(string key) => new() { { "authorization", $"Bearer {key}" } };

    private static StreamDatasetRequest Stream(string dataset, string split, bool fill = false) =>
        new() { Dataset = dataset, Split = split, Encoders = { Mlp }, FillMissing = fill };

    private static LookupRequest WithShape(long[] shape, int floats = VectorLength)
    {
        var request = Contract.Custom(Mlp, "shaped");
        request.Features = new FeatureBatch { Tensor = new TensorFeatures { ItemShape = { shape }, Data = ByteString.CopyFrom(new byte[floats * 4]) } };
        return request;
    }

    private static LookupRequest HugeShape() => WithShape([1L << 62, 1L << 62]);

    private static LookupRequest NaNFeatures()
    {
        var v = Contract.Vector(VectorLength, 1);
        v[7] = float.NaN;
        var request = Contract.Custom(Mlp, "nan");
        request.Features = Contract.Vectors(VectorLength, v);
        return request;
    }

    private static LookupRequest PoisonedContentKey()
    {
        var request = new LookupRequest { Encoders = { Mlp }, Keys = new KeyBatch { Content = new ContentKeys { Hashes = ByteString.CopyFrom(new byte[16]) } } };
        request.Features = Contract.Vectors(VectorLength, Contract.Vector(VectorLength, 5));
        return request;
    }

    private static LookupRequest ManyKeys(int n) => Contract.Custom(Mlp, [.. Enumerable.Range(0, n).Select(i => $"k{i}")]);

    private static LookupRequest LongText(int chars)
    {
        var request = Contract.Custom(Mlp, "text");
        request.Features = Contract.Texts(new string('t', chars));
        return request;
    }

    private static Task ReadAllAsync(Scene s, StreamDatasetRequest request) => ReadAllAsync(s.Contract, request);

    private static async Task ReadAllAsync(Contract c, StreamDatasetRequest request)
    {
        using var call = c.Cache.StreamDataset(request);
        await foreach (var _ in call.ResponseStream.ReadAllAsync())
        {
        }
    }

    private static async Task PrewarmAsync(Scene s, PrewarmRequest request) => await Contract.PrewarmToEndAsync(s.Contract.Admin, request);

    private static async Task DuplexAsync(Scene s, LookupRequest request)
    {
        using var call = s.Contract.Cache.GetEmbeddings();
        try
        {
            await call.RequestStream.WriteAsync(request);
            await call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException)
        {
            // The service may end the call while the request is still being sent (a message over the size limit is
            // refused from its header): the write then fails as cancelled, and the service's status comes with the
            // response, read below.
        }

        await foreach (var _ in call.ResponseStream.ReadAllAsync())
        {
        }
    }

    /// <summary>Holds two dataset streams open (never read), then opens a third.</summary>
    private static async Task ThirdStreamAsync(Scene s)
    {
        var held = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 1, Encoders = { Mlp } };
        var a = s.Contract.Cache.StreamDataset(held);
        var b = s.Contract.Cache.StreamDataset(held);
        try
        {
            await a.ResponseHeadersAsync;
            await b.ResponseHeadersAsync;
            await ReadAllAsync(s, held);
        }
        finally
        {
            a.Dispose();
            b.Dispose();
            var limiter = s.Service.Services.GetRequiredService<CallerStreamLimiter>();
            await Wait.UntilAsync(() => limiter.Open(Caller) == 0, "the held streams to end on the server");
        }
    }

    private static string Shorten(string s) => s.Length <= 200 ? s : s[..200] + "…";
}
