using System.Net.Sockets;
using System.Runtime.CompilerServices;
using EmbedCache.Contract.V1;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;

namespace EmbedCache.CacheClient;

/// <summary>
/// Entry point for trainers and ops: one HTTP/2 channel to an EmbedCache service and typed
/// calls over its contract, with deadlines, retries on UNAVAILABLE and resumable epoch streams.
/// Thread-safe; create one per process and share it.
/// </summary>
public sealed class EmbedCacheClient : IDisposable
{
    private readonly GrpcChannel? _ownedChannel;
    private readonly EmbedCacheClientOptions _options;

    /// <summary>Connects to <paramref name="address"/>, e.g. <c>http://127.0.0.1:50051</c>.</summary>
    public EmbedCacheClient(Uri address)
        : this(new EmbedCacheClientOptions { Address = address })
    {
    }

    /// <summary>Connects as <paramref name="options"/> say.</summary>
    /// <exception cref="ArgumentException">A <c>unix:</c> address that is not an absolute path, or one with an
    /// <see cref="EmbedCacheClientOptions.HttpHandler"/> that cannot be pointed at the socket.</exception>
    public EmbedCacheClient(EmbedCacheClientOptions options)
    {
        _options = options;
        var handler = options.HttpHandler;
        var address = options.Address;
        if (address.IsAbsoluteUri && address.Scheme == "unix")
        {
            UnixSocketPath = options.UnixSocketPath
                ?? throw new ArgumentException($"'{address}' is not a Unix socket address: use unix:///absolute/path/to.sock", nameof(options));
            handler = UnixSocketHandler(UnixSocketPath, handler);
            // The authority is never resolved (every connection goes to the socket); it is the HTTP/2 :authority.
            address = new Uri("http://localhost");
        }

        _ownedChannel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = options.MaxReceiveMessageBytes,
            ServiceConfig = RetryConfig(options),
            MaxRetryAttempts = Math.Max(1, options.MaxAttempts),
            HttpHandler = handler,
            DisposeHttpClient = true,
        });
        (Invoker, Channel) = (WithKey(_ownedChannel, options.ApiKey), _ownedChannel);
        Cache = new EmbeddingCache.EmbeddingCacheClient(Invoker);
        Admin = new CacheAdmin.CacheAdminClient(Invoker);
    }

    /// <summary>Uses an existing channel; the caller keeps ownership of it.</summary>
    public EmbedCacheClient(GrpcChannel channel, EmbedCacheClientOptions? options = null)
    {
        _options = options ?? new EmbedCacheClientOptions();
        Channel = channel;
        Invoker = WithKey(channel, _options.ApiKey);
        Cache = new EmbeddingCache.EmbeddingCacheClient(Invoker);
        Admin = new CacheAdmin.CacheAdminClient(Invoker);
    }

    /// <summary>The channel the client talks over.</summary>
    public GrpcChannel Channel { get; }

    /// <summary>
    /// The path of the service's Unix domain socket when the client talks over one (a <c>unix://</c> address), else
    /// null; also null for a client made from a channel, whose transport it cannot see.
    /// </summary>
    public string? UnixSocketPath { get; }

    /// <summary>True when the client talks to the service over its Unix domain socket (see <see cref="UnixSocketPath"/>).</summary>
    public bool IsUnixSocket => UnixSocketPath is not null;

    /// <summary>The call invoker (with the API key attached), for generated clients of other services.</summary>
    public CallInvoker Invoker { get; }

    /// <summary>The generated trainer-API client, for calls this class does not wrap.</summary>
    public EmbeddingCache.EmbeddingCacheClient Cache { get; }

    /// <summary>The generated admin-API client, for calls this class does not wrap.</summary>
    public CacheAdmin.CacheAdminClient Admin { get; }

    /// <summary>
    /// Asks the standard gRPC health service whether the service (or one named service) is serving.
    /// </summary>
    /// <param name="service">A gRPC service name, or empty for the server as a whole.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The reported status.</returns>
    public async Task<HealthCheckResponse.Types.ServingStatus> CheckHealthAsync(
        string service = "", CancellationToken cancellationToken = default)
    {
        var health = new Health.HealthClient(Invoker);
        var reply = await health.CheckAsync(new HealthCheckRequest { Service = service }, Unary(cancellationToken)).ConfigureAwait(false);
        return reply.Status;
    }

    /// <summary>The encoders the service owns: name, fingerprint, dim, dtype, tier, input kind.</summary>
    public async Task<IReadOnlyList<EncoderInfo>> ListEncodersAsync(CancellationToken cancellationToken = default) =>
        (await Cache.ListEncodersAsync(new ListEncodersRequest(), Unary(cancellationToken)).ConfigureAwait(false)).Encoders;

    /// <summary>
    /// One lookup of <paramref name="keys"/> for <paramref name="encoders"/>. With
    /// <paramref name="features"/>, keys that miss are encoded by the service, stored and returned.
    /// </summary>
    public Task<LookupResponse> LookupAsync(IEnumerable<string> encoders, KeyBatch keys, FeatureBatch? features = null,
        bool includeLabels = false, CancellationToken cancellationToken = default)
    {
        var request = new LookupRequest { Keys = keys, Features = features, IncludeLabels = includeLabels };
        request.Encoders.Add(encoders);
        return LookupAsync(request, cancellationToken);
    }

    /// <summary>One lookup, as a raw request.</summary>
    public async Task<LookupResponse> LookupAsync(LookupRequest request, CancellationToken cancellationToken = default) =>
        await Cache.LookupAsync(request, Unary(cancellationToken)).ConfigureAwait(false);

    /// <summary>Opens a bidirectional lookup stream (GetEmbeddings): many batches over one call.</summary>
    public LookupStream OpenLookupStream(CancellationToken cancellationToken = default) =>
        new(Invoker.AsyncDuplexStreamingCall(PooledBatches.GetEmbeddingsOwned, null, new CallOptions(cancellationToken: cancellationToken)));

    /// <summary>
    /// <see cref="OpenLookupStream"/> without an allocation per response: each response is read into a pooled
    /// buffer, and its <see cref="EncoderEmbeddings.Embeddings"/> are a view of that buffer, valid only until the
    /// next call on the stream (or its disposal). Convert or copy what you keep before the next lookup.
    /// </summary>
    public LookupStream OpenPooledLookupStream(CancellationToken cancellationToken = default) =>
        new(Invoker.AsyncDuplexStreamingCall(PooledBatches.GetEmbeddings, null, new CallOptions(cancellationToken: cancellationToken)));

    /// <summary>
    /// Streams one epoch of a cached split: batches in the order fixed by the request's seed and
    /// epoch, identical for every caller. If the connection drops
    /// (UNAVAILABLE), the stream resumes where it stopped, up to the configured attempts.
    /// Each batch owns its bytes; see <see cref="StreamEpochPooledAsync"/> for the faster variant.
    /// </summary>
    public IAsyncEnumerable<DatasetBatch> StreamEpochAsync(StreamDatasetRequest request, CancellationToken cancellationToken = default) =>
        StreamCoreAsync(request, pooled: false, cancellationToken);

    /// <summary>
    /// <see cref="StreamEpochAsync"/> without an allocation per batch: each batch is read into a pooled buffer,
    /// and its <see cref="EncoderEmbeddings.Embeddings"/> are a view of that buffer, valid only until the next
    /// batch is requested (or the enumeration ends). Convert or copy what you keep before moving on, e.g. with
    /// <see cref="Embeddings.ToFloat32(EncoderEmbeddings, Span{float})"/>.
    /// </summary>
    public IAsyncEnumerable<DatasetBatch> StreamEpochPooledAsync(StreamDatasetRequest request, CancellationToken cancellationToken = default) =>
        StreamCoreAsync(request, pooled: true, cancellationToken);

    /// <summary>
    /// One epoch, over the shared-memory ring or gRPC (see <see cref="UseSharedMemory"/>); when the service goes away
    /// (UNAVAILABLE) the epoch resumes at the first batch not yet yielded, up to the configured attempts.
    /// </summary>
    private async IAsyncEnumerable<DatasetBatch> StreamCoreAsync(StreamDatasetRequest request, bool pooled,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Func<StreamDatasetRequest, IAsyncEnumerable<DatasetBatch>> open = UseSharedMemory()
            ? next => SharedEpochStream.ReadAsync(Cache, next, _options.SharedMemoryRingBytes, pooled, cancellationToken)
            : next => GrpcEpochAsync(next, pooled, cancellationToken);
        var next = request.Clone();
        var attempt = 0;
        while (true)
        {
            var batches = open(next).GetAsyncEnumerator(cancellationToken);
            try
            {
                while (true)
                {
                    DatasetBatch batch;
                    try
                    {
                        if (!await batches.MoveNextAsync().ConfigureAwait(false))
                            yield break;
                        batch = batches.Current;
                    }
                    catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && ++attempt < _options.MaxAttempts)
                    {
                        await Task.Delay(Backoff(attempt), cancellationToken).ConfigureAwait(false);
                        break;
                    }

                    attempt = 0;
                    next.StartOffset = batch.Offset + (ulong)(batch.Labels?.Pairs is { } p && p.AIndex.Count > 0 ? p.AIndex.Count : batch.Indices.Count);
                    yield return batch;
                }
            }
            finally
            {
                await batches.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>One StreamDataset call; a pooled batch's buffer goes back when the next batch is asked for.</summary>
    private async IAsyncEnumerable<DatasetBatch> GrpcEpochAsync(StreamDatasetRequest request, bool pooled, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var call = Invoker.AsyncServerStreamingCall(pooled ? PooledBatches.StreamDataset : PooledBatches.StreamDatasetOwned, null,
            new CallOptions(cancellationToken: cancellationToken), request);
        PooledBatches.Pooled<DatasetBatch>? lent = null;
        try
        {
            while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
            {
                lent = call.ResponseStream.Current;
                yield return lent.Message;
                lent.Release();
                lent = null;
            }
        }
        finally
        {
            lent?.Release();
        }
    }

    /// <summary>How the last epoch stream was carried: "shared-memory" or "grpc" (null before the first).</summary>
    public string? EpochTransport { get; private set; }

    private int _transportLogged;

    /// <summary>Shared memory when the service is on this host (a Unix socket) and the options allow it; logs the choice once.</summary>
    private bool UseSharedMemory()
    {
        var unix = IsUnixSocket;
        var address = UnixSocketPath is { } path ? "unix://" + path : Channel.Target;
        var (shared, why) = _options.SharedMemory switch
        {
            SharedMemoryMode.Off => (false, "SharedMemory is Off"),
            _ when unix => (true, $"the service is on this host ({address})"),
            SharedMemoryMode.Require => throw new InvalidOperationException(
                $"SharedMemory is Require, but the service at {address} is not reached over a Unix socket: use its unix:///path address on its host"),
            _ => (false, $"the service at {address} is not on a Unix socket"),
        };
        EpochTransport = shared ? "shared-memory" : "grpc";
        if (Interlocked.Exchange(ref _transportLogged, 1) == 0)
            _options.Log?.Invoke($"epoch streams: {(shared ? "shared memory" : "gRPC")} ({why})");
        return shared;
    }

    /// <summary>Starts (or attaches to) a prewarm job and yields its progress until it ends.</summary>
    public async IAsyncEnumerable<PrewarmProgress> PrewarmAsync(PrewarmRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var follow = request.Clone();
        follow.Follow = true;
        using var call = Admin.Prewarm(follow, new CallOptions(cancellationToken: cancellationToken));
        await foreach (var progress in call.ResponseStream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            yield return progress;
    }

    /// <summary>Per-namespace items, bytes, hits, misses and encodes.</summary>
    public async Task<GetStatsResponse> GetStatsAsync(CancellationToken cancellationToken = default) =>
        await Admin.GetStatsAsync(new GetStatsRequest(), Unary(cancellationToken)).ConfigureAwait(false);

    /// <summary>Makes everything stored so far durable.</summary>
    public async Task<CheckpointResponse> CheckpointAsync(CancellationToken cancellationToken = default) =>
        await Admin.CheckpointAsync(new CheckpointRequest(), Unary(cancellationToken)).ConfigureAwait(false);

    /// <summary>Drops an encoder's namespace (its current fingerprint) or an explicit fingerprint.</summary>
    public async Task<DropNamespaceResponse> DropNamespaceAsync(string? encoder, string? fingerprint = null, CancellationToken cancellationToken = default) =>
        await Admin.DropNamespaceAsync(new DropNamespaceRequest { Encoder = encoder ?? "", Fingerprint = fingerprint ?? "" }, Unary(cancellationToken)).ConfigureAwait(false);

    /// <summary>Prewarm jobs, running and finished.</summary>
    public async Task<IReadOnlyList<PrewarmProgress>> ListJobsAsync(CancellationToken cancellationToken = default) =>
        (await Admin.ListJobsAsync(new ListJobsRequest(), Unary(cancellationToken)).ConfigureAwait(false)).Jobs;

    /// <summary>Cancels a prewarm job and returns its final state.</summary>
    public async Task<PrewarmProgress> CancelJobAsync(string jobId, CancellationToken cancellationToken = default) =>
        (await Admin.CancelJobAsync(new CancelJobRequest { JobId = jobId }, Unary(cancellationToken)).ConfigureAwait(false)).Job;

    /// <inheritdoc />
    public void Dispose() => _ownedChannel?.Dispose();

    private CallOptions Unary(CancellationToken cancellationToken) =>
        new(deadline: DateTime.UtcNow + _options.CallTimeout, cancellationToken: cancellationToken);

    private TimeSpan Backoff(int attempt)
    {
        var ms = Math.Min(_options.MaxBackoff.TotalMilliseconds, _options.InitialBackoff.TotalMilliseconds * Math.Pow(2, attempt - 1));
        return TimeSpan.FromMilliseconds(ms * (0.5 + (Random.Shared.NextDouble() / 2)));
    }

    /// <summary>
    /// The handler for a <c>unix:</c> address: every connection goes to <paramref name="path"/>. The given handler, if
    /// any, must be (or wrap) a <see cref="SocketsHttpHandler"/> without a connect callback, which gets ours.
    /// </summary>
    private static HttpMessageHandler UnixSocketHandler(string path, HttpMessageHandler? given)
    {
        var endpoint = new UnixDomainSocketEndPoint(path);
        SocketsHttpHandler sockets;
        var innermost = given;
        DelegatingHandler? outer = null;
        while (innermost is DelegatingHandler delegating)
        {
            outer = delegating;
            innermost = delegating.InnerHandler;
        }

        switch (innermost)
        {
            case null:
                // As GrpcChannel's own handler: more than one HTTP/2 connection when one is full of streams.
                sockets = new SocketsHttpHandler { EnableMultipleHttp2Connections = true };
                if (outer is not null)
                    outer.InnerHandler = sockets;
                break;
            case SocketsHttpHandler { ConnectCallback: null } s:
                sockets = s;
                break;
            default:
                throw new ArgumentException(
                    $"HttpHandler: a unix:// address needs a SocketsHttpHandler without a ConnectCallback (or none: the client makes one); this one ends in {innermost.GetType().Name}{(innermost is SocketsHttpHandler ? " with a ConnectCallback" : "")}");
        }

        sockets.ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
        return given ?? sockets;
    }

    private static CallInvoker WithKey(GrpcChannel channel, string? apiKey) =>
        string.IsNullOrEmpty(apiKey)
            ? channel.CreateCallInvoker()
            : channel.Intercept(metadata =>
            {
                metadata.Add("authorization", $"Bearer {apiKey}");
                return metadata;
            });

    private static ServiceConfig RetryConfig(EmbedCacheClientOptions options) => new()
    {
        MethodConfigs =
        {
            new MethodConfig
            {
                Names = { MethodName.Default },
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = Math.Max(2, options.MaxAttempts),
                    InitialBackoff = options.InitialBackoff,
                    MaxBackoff = options.MaxBackoff,
                    BackoffMultiplier = 2,
                    RetryableStatusCodes = { StatusCode.Unavailable },
                },
            },
        },
    };
}

/// <summary>A bidirectional lookup stream: send batches, read responses in the same order.</summary>
public sealed class LookupStream : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<LookupRequest, PooledBatches.Pooled<LookupResponse>> _call;
    private PooledBatches.Pooled<LookupResponse>? _lent;
    private ulong _nextId;

    internal LookupStream(AsyncDuplexStreamingCall<LookupRequest, PooledBatches.Pooled<LookupResponse>> call) => _call = call;

    /// <summary>Sends one batch and waits for its response (requests are answered in order).</summary>
    public async Task<LookupResponse> LookupAsync(LookupRequest request, CancellationToken cancellationToken = default)
    {
        await SendAsync(request, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new RpcException(new Status(StatusCode.Unavailable, "the lookup stream ended early"));
    }

    /// <summary>Sends a batch without waiting (pipelining); read responses with <see cref="ReadAsync"/>.</summary>
    public Task SendAsync(LookupRequest request, CancellationToken cancellationToken = default)
    {
        request.RequestId = ++_nextId;
        return _call.RequestStream.WriteAsync(request, cancellationToken);
    }

    /// <summary>Reads the next response; null when the stream has ended. On a pooled stream this frees the previous one.</summary>
    public async Task<LookupResponse?> ReadAsync(CancellationToken cancellationToken = default)
    {
        Release();
        if (!await _call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
            return null;
        _lent = _call.ResponseStream.Current;
        return _lent.Message;
    }

    private void Release()
    {
        _lent?.Release();
        _lent = null;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Release();
        try
        {
            await _call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (RpcException)
        {
        }
        catch (InvalidOperationException)
        {
        }

        _call.Dispose();
    }
}
