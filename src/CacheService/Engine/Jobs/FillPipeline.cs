using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Keys;

namespace EmbedCache.Engine.Jobs;

/// <summary>
/// One prewarm run: reader → (skip what is stored) → N encoder workers → store writer →
/// checkpoints. Bounded channels give backpressure: the reader never runs far ahead of the
/// encoders, and the encoders never run far ahead of the writer.
/// </summary>
internal sealed class FillPipeline(CacheEngine engine, PrewarmJob job, JobOptions options)
{
    private sealed record Work(EncoderEntry Encoder, ItemKeyBatch Keys, FeatureBatch Features);

    /// <summary>Encoded rows in a pooled buffer (the first <c>Keys.Count × RowBytes</c> bytes), returned by the writer.</summary>
    private sealed record Done(EncoderEntry Encoder, ItemKeyBatch Keys, byte[] Rows);

    public async Task RunAsync()
    {
        var token = job.Token;
        var spec = job.Spec;
        var dataset = engine.Datasets.Resolve(spec.Dataset);
        var encoders = spec.Encoders.Select(engine.GetEncoder).ToArray();

        var remote = engine.Store.Remote;
        var droppedAtStart = remote?.Dropped ?? 0;
        long total = 0;
        if (job.Range is { } range)
            total = range.Count * encoders.Length;
        else
        {
            foreach (var split in spec.Splits)
                total += dataset.CountItems(split, token) * encoders.Length;
        }

        job.SetTotal(total);

        var work = Channel.CreateBounded<Work>(new BoundedChannelOptions(spec.Workers * 2) { SingleWriter = true });
        // Encoded batches may queue up to DoneQueueBytes for the writer: while a checkpoint shuts writes out (it holds
        // them back while FASTER writes its hash indexes, 0.1–0.3 s here) the encoders keep going instead of waiting.
        var batchBytes = (long)spec.BatchSize * encoders.Max(e => e.RowBytes);
        var doneCapacity = (int)Math.Clamp(DoneQueueBytes / Math.Max(batchBytes, 1), spec.Workers * 2, 4096);
        var done = Channel.CreateBounded<Done>(new BoundedChannelOptions(doneCapacity) { SingleReader = true });

        var reader = Task.Run(() => ReadAsync(dataset, encoders, work.Writer, token), token);
        var workers = Enumerable.Range(0, spec.Workers)
            .Select(_ => Task.Factory.StartNew(() => EncodeLoop(work.Reader, done.Writer, token), token, TaskCreationOptions.LongRunning, TaskScheduler.Default))
            .ToArray();
        var writer = Task.Run(() => WriteAsync(done.Reader, token), token);

        try
        {
            await reader;
        }
        finally
        {
            work.Writer.TryComplete();
        }

        try
        {
            await Task.WhenAll(workers);
        }
        finally
        {
            done.Writer.TryComplete();
        }

        await writer;

        if (job.Range is not null)
        {
            // A shard of a distributed job: it is done once its rows and labels are on the cluster (the job's last
            // shard completes the splits there); this node's own checkpoints run as they always do.
            Shared = remote is null || await SharedAsync(remote, droppedAtStart, token);
            return;
        }

        // With a remote tier, the splits are complete on the cluster only once every row and label written here
        // reached it: wait for the write-behind queue, and share the manifests only if nothing was dropped meanwhile.
        var share = remote is null || await SharedAsync(remote, droppedAtStart, token);

        // Everything is written: record the splits as complete, then make rows and manifests durable in one
        // checkpoint. The manifests are written after every row, so any checkpoint that holds them holds the rows.
        var fingerprints = encoders.Select(e => e.Fingerprint).ToArray();
        foreach (var split in spec.Splits)
        {
            if (!engine.Splits.MarkComplete(dataset.Name, split, fingerprints, share) && share)
                job.NotShared("the cluster did not take the split's manifest");
        }

        await TimedCommitAsync(token);
    }

    /// <summary>After a shard's run: every row and label it wrote reached the cluster.</summary>
    public bool Shared { get; private set; }

    /// <summary>How long a job waits at its end for its writes to reach the cluster.</summary>
    internal static readonly TimeSpan RemoteFlushTimeout = TimeSpan.FromSeconds(30);

    private async Task<bool> SharedAsync(Remote.RemoteCluster remote, long droppedAtStart, CancellationToken token)
    {
        var flush = Stopwatch.GetTimestamp();
        var flushed = await remote.FlushAsync(RemoteFlushTimeout, token);
        job.AddStageTime(JobStage.Write, flush);
        if (!flushed)
        {
            job.NotShared($"its writes did not reach the cluster within {RemoteFlushTimeout.TotalSeconds:0} s");
            return false;
        }

        if (remote.Dropped != droppedAtStart)
        {
            job.NotShared($"{remote.Dropped - droppedAtStart} writes were dropped (the write-behind queue was full)");
            return false;
        }

        return true;
    }

    private async Task ReadAsync(Dataset dataset, EncoderEntry[] encoders, ChannelWriter<Work> output, CancellationToken token)
    {
        var manifest = dataset.Manifest;
        var range = job.Range;
        foreach (var split in range is null ? job.Spec.Splits : [range.Split])
        {
            // A shard's split was recorded when its job was created; the shard that starts the split stores its pairs.
            var pairs = manifest.Labels.Kind == DatasetLabelKind.Pair && range is not { Start: > 0 } ? dataset.ReadPairs(split, token) : null;
            if (range is null)
                engine.Splits.Record(dataset.Name, split, dataset.CountItems(split, token), pairs?.Count ?? 0, manifest.Labels.Kind, manifest.Key.Scheme);
            if (pairs is not null)
            {
                using var lease = engine.Sessions.Rent();
                StorePairs(lease.Session, dataset.Name, split, pairs);
            }

            var read = Stopwatch.GetTimestamp();
            var end = range is null ? long.MaxValue : range.Start + range.Count;
            foreach (var chunk in dataset.OpenSplit(split).ReadChunks(job.Spec.BatchSize, range?.Start ?? 0, token))
            {
                // Shards are whole batches long, so a shard ends at a chunk's boundary.
                if (chunk.StartIndex >= end)
                    break;
                var indices = new ulong[chunk.Count];
                for (var i = 0; i < chunk.Count; i++)
                    indices[i] = (ulong)(chunk.StartIndex + i);

                foreach (var encoder in encoders)
                {
                    var features = ToFeatures(chunk, encoder);
                    var keys = manifest.Key.Scheme switch
                    {
                        DatasetKeyScheme.Positional => ItemKeyBatch.Positional(dataset.Name, split, indices),
                        DatasetKeyScheme.Custom => ItemKeyBatch.Custom(chunk.Keys!.Select(k => (ReadOnlyMemory<byte>)k).ToList()),
                        _ => FeatureSlicing.ContentKeys(features),
                    };

                    var mask = FoundMask.New(chunk.Count);
                    using (var lease = engine.Sessions.Rent())
                    {
                        if (encoder == encoders[0])
                            StoreLabels(lease.Session, dataset, split, chunk, indices, keys);
                        lease.Session.Contains(encoder.Namespace, keys, mask);
                    }

                    var missing = FoundMask.Unset(mask, chunk.Count);
                    job.AddSkipped(chunk.Count - missing.Length);
                    if (missing.Length == 0)
                        continue;
                    var work = missing.Length == chunk.Count
                        ? new Work(encoder, keys, features)
                        : new Work(encoder, keys.Select(missing), FeatureSlicing.Select(features, missing));
                    job.AddStageTime(JobStage.Read, read);
                    await output.WriteAsync(work, token); // waits while the encoders are busy: not read time
                    read = Stopwatch.GetTimestamp();
                }
            }

            job.AddStageTime(JobStage.Read, read);
        }
    }

    private static void StoreLabels(Storage.StoreSession session, Dataset dataset, string split, DatasetChunk chunk, ulong[] indices, ItemKeyBatch keys)
    {
        if (chunk.Groups is not null)
            DatasetLabels.PutGroups(session, dataset.Name, split, indices, chunk.Groups);
        if (dataset.Manifest.Key.Scheme != DatasetKeyScheme.Positional)
            DatasetLabels.PutIndexKeys(session, dataset.Name, split, indices, keys);
    }

    private static void StorePairs(Storage.StoreSession session, string dataset, string split, IReadOnlyList<PairRecord> pairs)
    {
        const int Chunk = 4096;
        for (var start = 0; start < pairs.Count; start += Chunk)
        {
            var n = Math.Min(Chunk, pairs.Count - start);
            var indices = new ulong[n];
            var records = new PairLabel[n];
            for (var i = 0; i < n; i++)
            {
                indices[i] = (ulong)(start + i);
                var p = pairs[start + i];
                records[i] = new PairLabel(p.A, p.B, p.Score, p.Subgroup);
            }

            DatasetLabels.PutPairs(session, dataset, split, indices, records);
        }
    }

    /// <summary>
    /// One encoder worker, on a thread of its own for the whole job: libtorch's OpenMP runtime keeps a team of
    /// intra-op threads per calling thread, so forward passes that hop between thread-pool threads (as awaits
    /// do) start teams on several of them, which then compete for the cores while they spin down. With several
    /// workers, each thread's team is sized so that together they fit the cores.
    /// </summary>
    private void EncodeLoop(ChannelReader<Work> input, ChannelWriter<Done> output, CancellationToken token)
    {
        // N workers share the cores: each gets cores / N libtorch threads (one worker keeps them all).
        if (job.Spec.Workers > 1 && job.Spec.Encoders.Any(name => engine.GetEncoder(name).Encoder is TorchEncoder))
            TorchRuntime.SetThreadsOfCallingThread(Math.Max(1, Environment.ProcessorCount / job.Spec.Workers));
        while (input.WaitToReadAsync(token).AsTask().GetAwaiter().GetResult())
        {
            while (input.TryRead(out var w))
            {
                var encode = Stopwatch.GetTimestamp();
                var rows = ArrayPool<byte>.Shared.Rent(w.Features.Count * w.Encoder.RowBytes);
                CacheEngine.EncodeRows(w.Encoder, w.Features, rows, token);
                w.Encoder.RecordEncoded(w.Features.Count);
                job.AddStageTime(JobStage.Encode, encode);
                output.WriteAsync(new Done(w.Encoder, w.Keys, rows), token).AsTask().GetAwaiter().GetResult();
            }
        }
    }

    /// <summary>How many bytes of encoded rows may wait for the writer.</summary>
    private const long DoneQueueBytes = 64L << 20;

    /// <summary>Rows written between two <see cref="Storage.EmbeddingStore.FlushBehind"/> calls: a few log pages.</summary>
    private const long FlushBehindBytes = 16L << 20;

    /// <summary>
    /// Writes encoded rows (flushing the log behind them as it goes, so the disk writes while the encoders run and the
    /// job's final checkpoint has little left to write), and every <see cref="JobOptions.CheckpointInterval"/> starts a checkpoint that runs beside
    /// the writes (the store takes checkpoints under traffic): while the encoders hold the cores a checkpoint can take
    /// a second or more, and waiting for it would stall them behind the bounded channels. One runs at a time; a failed
    /// one fails the job.
    /// </summary>
    private async Task WriteAsync(ChannelReader<Done> input, CancellationToken token)
    {
        var sinceCheckpoint = Stopwatch.StartNew();
        Task? commit = null;
        long unflushed = 0;
        try
        {
            using var lease = engine.Sessions.Rent();
            await foreach (var d in input.ReadAllAsync(token))
            {
                var write = Stopwatch.GetTimestamp();
                var bytes = d.Keys.Count * d.Encoder.RowBytes;
                lease.Session.Put(d.Encoder.Namespace, d.Keys, d.Rows.AsSpan(0, bytes));
                ArrayPool<byte>.Shared.Return(d.Rows);
                if ((unflushed += bytes) >= FlushBehindBytes)
                {
                    engine.Store.FlushBehind(d.Encoder.Namespace);
                    unflushed = 0;
                }

                job.AddEncoded(d.Keys.Count);
                job.AddStageTime(JobStage.Write, write);
                if (commit is { IsCompleted: true })
                {
                    await commit; // throws if it failed
                    commit = null;
                }

                if (commit is null && sinceCheckpoint.Elapsed >= options.CheckpointInterval)
                {
                    commit = TimedCommitAsync(token);
                    sinceCheckpoint.Restart();
                }
            }
        }
        catch
        {
            if (commit is not null)
                await commit.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing); // the write's failure is the one to report
            throw;
        }

        if (commit is not null)
            await commit;
    }

    private Task TimedCommitAsync(CancellationToken token) => job.TimeAsync(JobStage.Checkpoint, () => CommitAsync(token));

    /// <summary>Takes a checkpoint; everything processed before it started is committed.</summary>
    private async Task CommitAsync(CancellationToken token)
    {
        var processed = job.Processed;
        await engine.Store.CheckpointAsync(token);
        job.SetCommitted(processed);
    }

    /// <summary>The encoder accepts the dataset's features (kind, and element count for tensors).</summary>
    public static bool Accepts(EncoderEntry encoder, Dataset dataset) => Mismatch(encoder, dataset) is null;

    public static string? Mismatch(EncoderEntry encoder, Dataset dataset)
    {
        var features = dataset.Manifest.Features;
        var kind = encoder.Encoder.InputKind;
        if (features.Kind == DatasetFeatureKind.Text)
            return kind == InputKind.Text ? null : $"encoder '{encoder.Name}' takes {kind}, dataset {Echo.Quote(dataset.Name)} has text";
        if (features.Kind == DatasetFeatureKind.Image)
            return kind == InputKind.Image ? null : $"encoder '{encoder.Name}' takes {kind}, dataset {Echo.Quote(dataset.Name)} has image files";
        if (kind == InputKind.Text)
            return $"encoder '{encoder.Name}' takes text, dataset {Echo.Quote(dataset.Name)} has {features.Kind.ToString().ToLowerInvariant()} features";
        if (features.Shape is { Length: > 0 } shape)
        {
            var need = FeatureSlicing.ItemLength(encoder.Encoder.InputShape);
            var have = FeatureSlicing.ItemLength(shape);
            if (need != have)
                return $"encoder '{encoder.Name}' takes {need} values per item ({string.Join('x', encoder.Encoder.InputShape)}), dataset {Echo.Quote(dataset.Name)} has {have}";
        }

        return null;
    }

    private static FeatureBatch ToFeatures(DatasetChunk chunk, EncoderEntry encoder) =>
        chunk.Texts is not null ? new TextFeatureBatch(chunk.Texts)
        : chunk.Images is not null ? new ImageFeatureBatch(chunk.Images)
        : new TensorFeatureBatch(chunk.Values!, encoder.Encoder.InputShape);
}
