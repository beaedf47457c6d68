using System.Buffers;
using EmbedCache.Contract.V1;
using EmbedCache.Engine;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Datasets;
using EmbedCache.Server.Configuration;
using EmbedCache.Server.Platform;
using Grpc.Core;
using Microsoft.Extensions.Options;
using JobManager = EmbedCache.Engine.Jobs.JobManager;
using JobState = EmbedCache.Engine.Jobs.JobState;
using PrewarmSpec = EmbedCache.Engine.Jobs.PrewarmSpec;
using StreamRequest = EmbedCache.Engine.Caching.StreamRequest;

namespace EmbedCache.Server.Grpc;

/// <summary>The trainer API: lookups with read-through, dataset streaming, encoder listing.</summary>
internal sealed partial class EmbeddingCacheService(
    CacheEngine engine, JobManager jobs, IOptions<EmbedCacheOptions> options, SharedStreams sharedStreams) : CacheBinding.Base
{
    private readonly EmbedCacheOptions.LimitSection _limits = options.Value.Limits;
    private readonly EmbedCacheOptions.SharedMemorySection _sharedMemory = options.Value.SharedMemory;

    /// <summary>The Unix socket's group (its members may map their rings), looked up once; null without one.</summary>
    private readonly Lazy<uint?> _ringGroup = new(() => options.Value.UnixSocketGroup is { Length: > 0 } name && !string.IsNullOrWhiteSpace(name)
        ? UnixFileAccess.GroupId(name)
        : null);

    public override async Task<LookupResponse> Lookup(LookupRequest request, ServerCallContext context)
    {
        // Unary: the response is serialized after we return, so its buffers cannot be pooled.
        var (response, _) = await LookupCoreAsync(request, pooled: false, context.CancellationToken);
        return response;
    }

    public override async Task GetEmbeddings(IAsyncStreamReader<LookupRequest> requestStream, IServerStreamWriter<LookupResponse> responseStream, ServerCallContext context)
    {
        var token = context.CancellationToken;
        while (await requestStream.MoveNext(token))
        {
            var (response, pooled) = await LookupCoreAsync(requestStream.Current, pooled: true, token);
            try
            {
                // WriteAsync serializes the message before it completes: the buffers are free after it.
                await responseStream.WriteAsync(response, token);
            }
            finally
            {
                foreach (var b in pooled)
                    ArrayPool<byte>.Shared.Return(b);
            }
        }
    }

    private async Task<(LookupResponse Response, List<byte[]> Pooled)> LookupCoreAsync(LookupRequest request, bool pooled, CancellationToken token)
    {
        if (request.Encoders.Count == 0)
            throw new InvalidRequestException("encoders", "name at least one encoder");
        if (request.Encoders.Distinct(StringComparer.Ordinal).Count() != request.Encoders.Count)
            throw new InvalidRequestException("encoders", "names an encoder twice");
        var entries = request.Encoders.Select(engine.GetEncoder).ToArray();
        var keys = ContractMapping.ToKeys(request.Keys, request.Features, _limits.MaxKeysPerRequest, out var features);
        if (request.Keys.SchemeCase == KeyBatch.SchemeOneofCase.Positional)
            engine.RequireInSplit(request.Keys.Positional.Dataset, request.Keys.Positional.Split, request.Keys.Positional.Indices, "keys.positional.indices");
        var n = keys.Count;
        var response = new LookupResponse { RequestId = request.RequestId, Count = (uint)n };
        var rented = new List<byte[]>(entries.Length);
        try
        {
            foreach (var entry in entries)
            {
                // Only a MaxKeysPerRequest configured far above its default can get here, but then as a clear status.
                if ((long)n * entry.RowBytes > Array.MaxLength)
                    throw new LimitExceededException($"keys: {n} rows of encoder '{entry.Name}' ({entry.RowBytes} bytes each) do not fit in one response; send fewer keys (Limits:MaxKeysPerRequest = {_limits.MaxKeysPerRequest})");
                var length = n * entry.RowBytes;
                var buffer = pooled ? ArrayPool<byte>.Shared.Rent(length) : new byte[length];
                if (pooled)
                    rented.Add(buffer);
                var found = FoundMask.New(n);
                var encoded = await engine.LookupAsync(entry, keys, features, buffer.AsMemory(0, length), found, token);
                response.Results.Add(ContractMapping.Embeddings(entry, buffer.AsMemory(0, length), found, encoded));
            }

            if (request.IncludeLabels)
                response.Labels = GroupLabels(request.Keys);
        }
        catch
        {
            foreach (var b in rented)
                ArrayPool<byte>.Shared.Return(b);
            throw;
        }

        return (response, rented);
    }

    private LabelBatch GroupLabels(KeyBatch keys)
    {
        if (keys.SchemeCase != KeyBatch.SchemeOneofCase.Positional)
            throw new InvalidRequestException("include_labels", "labels are kept by (dataset, split, index): use positional keys, or StreamDataset");
        var p = keys.Positional;
        var indices = p.Indices.ToArray();
        var groups = new long[indices.Length];
        var mask = FoundMask.New(indices.Length);
        using (var lease = engine.Sessions.Rent())
            DatasetLabels.GetGroups(lease.Session, p.Dataset, p.Split, indices, groups, mask);
        var labels = new LabelBatch { Found = Google.Protobuf.ByteString.CopyFrom(mask), Groups = new GroupLabels() };
        labels.Groups.GroupIds.Add(groups);
        return labels;
    }

    public override async Task StreamDataset(StreamDatasetRequest request, IServerStreamWriter<DatasetBatch> responseStream, ServerCallContext context)
    {
        var token = context.CancellationToken;
        var streamRequest = await PrepareStreamAsync(request, token);
        await foreach (var batch in engine.StreamSplitAsync(streamRequest, token))
        {
            using (batch)
            {
                await responseStream.WriteAsync(ToMessage(batch, withRows: true), token);
            }
        }
    }

    /// <summary>Checks a StreamDataset request (filling the split first when asked) and makes the engine's request of it.</summary>
    private async Task<StreamRequest> PrepareStreamAsync(StreamDatasetRequest request, CancellationToken token)
    {
        ContractMapping.CheckName("dataset", request.Dataset);
        ContractMapping.CheckName("split", request.Split);
        if (request.Encoders.Count == 0)
            throw new InvalidRequestException("encoders", "name at least one encoder");
        var batchSize = request.BatchSize == 0 ? _limits.DefaultStreamBatchSize : (int)Math.Min(request.BatchSize, int.MaxValue);
        if (batchSize > _limits.MaxStreamBatchSize)
            throw new LimitExceededException($"batch_size: {request.BatchSize} items per batch; the limit is Limits:MaxStreamBatchSize = {_limits.MaxStreamBatchSize}");
        var entries = request.Encoders.Select(engine.GetEncoder).ToArray();

        try
        {
            engine.RequireCachedSplit(request.Dataset, request.Split, entries);
        }
        catch (NotCachedException) when (request.FillMissing)
        {
            // Fill first: a prewarm of exactly this split, which other callers can attach to.
            var job = jobs.StartOrAttach(new PrewarmSpec(request.Dataset, [request.Split], [.. request.Encoders], 0, 0));
            await job.Completion.WaitAsync(token);
            if (job.State != JobState.Completed)
                throw new NotCachedException($"filling split {Echo.Quote(request.Split)} of dataset {Echo.Quote(request.Dataset)} did not complete: {job.Snapshot().Message}");
        }

        return new StreamRequest(request.Dataset, request.Split, [.. request.Encoders], batchSize, request.Shuffle,
            request.Seed, request.Epoch, request.StartOffset, request.IncludeLabels);
    }

    /// <summary>The batch as StreamDataset sends it; without rows, each result's embeddings are left empty (they are in a ring).</summary>
    private static DatasetBatch ToMessage(StreamBatch batch, bool withRows)
    {
        var n = batch.Indices.Length;
        var allFound = FoundMask.All(n);
        var message = new DatasetBatch { Offset = batch.Offset, Total = batch.Total };
        message.Indices.Add(batch.Indices);
        foreach (var r in batch.Results)
            message.Results.Add(ContractMapping.Embeddings(r.Encoder, withRows ? r.Rows : ReadOnlyMemory<byte>.Empty, allFound, 0));
        if (batch.Groups is not null)
        {
            message.Labels = new LabelBatch { Found = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(allFound), Groups = new GroupLabels() };
            message.Labels.Groups.GroupIds.Add(batch.Groups);
        }
        else if (batch.Pairs is not null)
        {
            var pairs = new PairLabels();
            var pairFound = FoundMask.All(batch.Pairs.Length);
            for (var i = 0; i < batch.Pairs.Length; i++)
            {
                var p = batch.Pairs[i];
                pairs.AIndex.Add(p.A);
                pairs.BIndex.Add(p.B);
                pairs.Score.Add(p.Score);
                pairs.Subgroup.Add(p.Subgroup);
            }

            message.Labels = new LabelBatch { Found = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(pairFound), Pairs = pairs };
        }

        return message;
    }

    public override Task<ListEncodersResponse> ListEncoders(ListEncodersRequest request, ServerCallContext context)
    {
        var response = new ListEncodersResponse();
        foreach (var e in engine.Entries.OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            var info = new EncoderInfo
            {
                Name = e.Name,
                Fingerprint = e.Fingerprint.ToString(),
                Dim = (uint)e.Dim,
                Dtype = ContractMapping.ToContract(e.DType),
                Tier = ContractMapping.ToContract(e.Tier),
                InputKind = ContractMapping.ToContract(e.Encoder.InputKind),
                Source = e.Encoder.Source,
            };
            info.InputShape.Add(e.Encoder.InputShape);
            response.Encoders.Add(info);
        }

        return Task.FromResult(response);
    }
}
