using EmbedCache.Engine;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Remote;
using Google.Protobuf;
using V1 = EmbedCache.Contract.V1;
using Emb = EmbedCache.Engine.Embeddings;
using EngineJobs = EmbedCache.Engine.Jobs;

namespace EmbedCache.Server.Grpc;

/// <summary>Wire ↔ engine translation, with validation that names the offending field.</summary>
internal static class ContractMapping
{
    public const int MaxCustomKeyBytes = 256;
    /// <summary>Characters (UTF-16 code units, as the wire's string holds them) of one text item.</summary>
    public const int MaxTextChars = 1 << 20;

    /// <summary>Dimensions of a tensor item; more is not a shape any encoder takes.</summary>
    public const int MaxItemDimensions = 16;

    /// <summary>Float32 values of one tensor item: the most a single buffer can hold.</summary>
    public const long MaxItemValues = int.MaxValue / sizeof(float);

    public static ItemKeyBatch ToKeys(V1.KeyBatch? keys, V1.FeatureBatch? features, int maxKeys, out FeatureBatch? featureBatch)
    {
        featureBatch = null;
        if (keys is null || keys.SchemeCase == V1.KeyBatch.SchemeOneofCase.None)
            throw new InvalidRequestException("keys", "set one key scheme: positional, custom or content");

        if (features is not null && features.KindCase != V1.FeatureBatch.KindOneofCase.None)
            featureBatch = ToFeatures(features);

        switch (keys.SchemeCase)
        {
            case V1.KeyBatch.SchemeOneofCase.Positional:
            {
                var p = keys.Positional;
                CheckName("keys.positional.dataset", p.Dataset);
                CheckName("keys.positional.split", p.Split);
                CheckCount("keys.positional.indices", p.Indices.Count, maxKeys);
                var indices = new ulong[p.Indices.Count];
                p.Indices.CopyTo(indices, 0);
                return CheckFeatures(ItemKeyBatch.Positional(p.Dataset, p.Split, indices), featureBatch);
            }

            case V1.KeyBatch.SchemeOneofCase.Custom:
            {
                var c = keys.Custom;
                CheckCount("keys.custom.keys", c.Keys.Count, maxKeys);
                var list = new ReadOnlyMemory<byte>[c.Keys.Count];
                for (var i = 0; i < list.Length; i++)
                {
                    var k = c.Keys[i];
                    if (k.Length is 0 or > MaxCustomKeyBytes)
                        throw new InvalidRequestException($"keys.custom.keys[{i}]", $"must be 1 to {MaxCustomKeyBytes} bytes (was {k.Length})");
                    list[i] = k.Memory;
                }

                return CheckFeatures(ItemKeyBatch.Custom(list), featureBatch);
            }

            default:
            {
                var hashes = keys.Content.Hashes;
                if (hashes.IsEmpty)
                {
                    if (featureBatch is null)
                        throw new InvalidRequestException("keys.content.hashes", "send the 16-byte hashes, or the features to hash");
                    CheckCount("features", featureBatch.Count, maxKeys);
                    return FeatureSlicing.ContentKeys(featureBatch);
                }

                if (hashes.Length % 16 != 0)
                    throw new InvalidRequestException("keys.content.hashes", $"must be a multiple of 16 bytes (was {hashes.Length})");
                CheckCount("keys.content.hashes", hashes.Length / 16, maxKeys);
                var batch = ItemKeyBatch.Content(hashes.Span);
                if (featureBatch is not null)
                {
                    // The hashes must be those of the features, or a client could poison another dataset's keys.
                    var computed = FeatureSlicing.ContentKeys(featureBatch);
                    for (var i = 0; i < batch.Count; i++)
                    {
                        if (!computed.ContentKey(i).SequenceEqual(batch.ContentKey(i)))
                            throw new InvalidRequestException($"keys.content.hashes[{i}]", "is not the XxHash128 of that item's features");
                    }
                }

                return CheckFeatures(batch, featureBatch);
            }
        }
    }

    private static ItemKeyBatch CheckFeatures(ItemKeyBatch keys, FeatureBatch? features)
    {
        if (features is not null && features.Count != keys.Count)
            throw new InvalidRequestException("features", $"{features.Count} items of features for {keys.Count} keys");
        return keys;
    }

    private static void CheckCount(string field, int count, int max)
    {
        if (count == 0)
            throw new InvalidRequestException(field, "the batch is empty");
        if (count > max)
            throw new LimitExceededException($"{field}: {count} keys in one request; the limit is Limits:MaxKeysPerRequest = {max}");
    }

    /// <summary>A dataset or split name: not empty, and short enough to be part of a stored key.</summary>
    public static void CheckName(string field, string name)
    {
        if (string.IsNullOrEmpty(name))
            throw new InvalidRequestException(field, "must not be empty");
        var bytes = System.Text.Encoding.UTF8.GetByteCount(name);
        if (bytes > ItemKeyBatch.MaxNameBytes)
            throw new InvalidRequestException(field, $"must be at most {ItemKeyBatch.MaxNameBytes} UTF-8 bytes (was {bytes}: {Echo.Quote(name)})");
    }

    public static FeatureBatch ToFeatures(V1.FeatureBatch features)
    {
        switch (features.KindCase)
        {
            case V1.FeatureBatch.KindOneofCase.Text:
            {
                var texts = features.Text.Texts;
                for (var i = 0; i < texts.Count; i++)
                {
                    if (texts[i].Length > MaxTextChars)
                        throw new InvalidRequestException($"features.text.texts[{i}]", $"is longer than {MaxTextChars} characters");
                }

                return new TextFeatureBatch([.. texts]);
            }

            case V1.FeatureBatch.KindOneofCase.Tensor:
            {
                var t = features.Tensor;
                if (t.ItemShape.Count == 0)
                    throw new InvalidRequestException("features.tensor.item_shape", "must list the item's dimensions");
                if (t.ItemShape.Count > MaxItemDimensions)
                    throw new InvalidRequestException("features.tensor.item_shape", $"has {t.ItemShape.Count} dimensions; at most {MaxItemDimensions} are allowed");
                long itemLength = 1;
                foreach (var d in t.ItemShape)
                {
                    if (d <= 0)
                        throw new InvalidRequestException("features.tensor.item_shape", $"dimensions must be positive (got {Echo.Shape(t.ItemShape)})");

                    // Compared before multiplying, so hostile dimensions (2^62 x 2^62) cannot overflow the product.
                    if (d > MaxItemValues / itemLength)
                        throw new InvalidRequestException("features.tensor.item_shape", $"{Echo.Shape(t.ItemShape)} is more than {MaxItemValues} float32 values per item");
                    itemLength *= d;
                }

                if (t.Data.Length % 4 != 0 || t.Data.Length / 4 % itemLength != 0 || t.Data.Length == 0)
                    throw new InvalidRequestException("features.tensor.data", $"{t.Data.Length} bytes is not a whole number of float32 items of shape {Echo.Shape(t.ItemShape)}");
                return TensorFeatureBatch.FromLittleEndianBytes(t.Data.Memory, [.. t.ItemShape]);
            }

            case V1.FeatureBatch.KindOneofCase.Images:
            {
                var items = features.Images.Items;
                var images = new ReadOnlyMemory<byte>[items.Count];
                for (var i = 0; i < images.Length; i++)
                {
                    if (items[i].IsEmpty)
                        throw new InvalidRequestException($"features.images.items[{i}]", "is empty; send the image file's bytes");
                    images[i] = items[i].Memory;
                }

                return new ImageFeatureBatch(images);
            }

            default:
                throw new InvalidRequestException("features", "set text, tensor or images");
        }
    }

    public static V1.DType ToContract(Emb.EmbeddingDType dtype) => dtype switch
    {
        Emb.EmbeddingDType.Float32 => V1.DType.Float32,
        Emb.EmbeddingDType.Float16 => V1.DType.Float16,
        Emb.EmbeddingDType.BFloat16 => V1.DType.Bfloat16,
        _ => V1.DType.Unspecified,
    };

    public static V1.Tier ToContract(Emb.Tier tier) => tier switch
    {
        Emb.Tier.Gpu => V1.Tier.Gpu,
        Emb.Tier.Cpu => V1.Tier.Cpu,
        Emb.Tier.Disk => V1.Tier.Disk,
        _ => V1.Tier.Unspecified,
    };

    public static V1.InputKind ToContract(Emb.InputKind kind) => kind switch
    {
        Emb.InputKind.Text => V1.InputKind.Text,
        Emb.InputKind.FloatVector => V1.InputKind.FloatVector,
        Emb.InputKind.FloatTensor => V1.InputKind.FloatTensor,
        Emb.InputKind.Image => V1.InputKind.Image,
        _ => V1.InputKind.Unspecified,
    };

    public static V1.JobState ToContract(EngineJobs.JobState state) => state switch
    {
        EngineJobs.JobState.Queued => V1.JobState.Queued,
        EngineJobs.JobState.Running => V1.JobState.Running,
        EngineJobs.JobState.Completed => V1.JobState.Completed,
        EngineJobs.JobState.Failed => V1.JobState.Failed,
        EngineJobs.JobState.Cancelled => V1.JobState.Cancelled,
        _ => V1.JobState.Unspecified,
    };

    public static V1.PrewarmProgress ToContract(EngineJobs.JobProgress p)
    {
        var progress = new V1.PrewarmProgress
        {
            JobId = p.Id,
            State = ToContract(p.State),
            Processed = (ulong)p.Processed,
            Total = (ulong)p.Total,
            Encoded = (ulong)p.Encoded,
            Skipped = (ulong)p.Skipped,
            Committed = (ulong)p.Committed,
            ItemsPerSecond = p.ItemsPerSecond,
            EtaSeconds = p.EtaSeconds ?? -1,
            Message = p.Message,
            Dataset = p.Spec.Dataset,
        };
        progress.Encoders.Add(p.Spec.Encoders);
        if (p.Cluster is { } cluster)
        {
            progress.Cluster = new V1.ClusterProgress
            {
                Shards = (uint)cluster.Shards,
                ShardsDone = (uint)cluster.ShardsDone,
                ShardsLeased = (uint)cluster.ShardsLeased,
            };
            foreach (var n in cluster.Nodes)
            {
                progress.Cluster.Nodes.Add(new V1.NodeShare
                {
                    Node = n.Node, ShardsDone = (uint)n.ShardsDone, ShardsLeased = (uint)n.ShardsLeased, Encoded = (ulong)n.Encoded, Skipped = (ulong)n.Skipped,
                });
            }
        }

        return progress;
    }

    public static V1.RemoteTierStats ToContract(RemoteStats? remote)
    {
        if (remote is null)
            return new V1.RemoteTierStats();
        var stats = new V1.RemoteTierStats
        {
            Enabled = true,
            Connected = remote.Connected,
            Breaker = remote.Breaker switch { BreakerState.Open => "open", BreakerState.HalfOpen => "half_open", _ => "closed" },
            BreakerOpened = (ulong)remote.BreakerOpened,
            Hits = (ulong)remote.Hits,
            Misses = (ulong)remote.Misses,
            Corrupt = (ulong)remote.Corrupt,
            Errors = (ulong)remote.Errors,
            Timeouts = (ulong)remote.Timeouts,
            Queued = (ulong)Math.Max(0, remote.WritesQueued),
            QueueBytes = (ulong)Math.Max(0, remote.QueueBytes),
            Written = (ulong)remote.Written,
            Dropped = (ulong)remote.Dropped,
            LastError = remote.LastError ?? "",
        };
        stats.Endpoints.Add(remote.Endpoints);
        return stats;
    }

    public static V1.EncoderEmbeddings Embeddings(EncoderEntry encoder, ReadOnlyMemory<byte> rows, byte[] found, int encoded) => new()
    {
        Encoder = encoder.Name,
        Fingerprint = encoder.Fingerprint.ToString(),
        Dim = (uint)encoder.Dim,
        Dtype = ToContract(encoder.DType),
        Found = UnsafeByteOperations.UnsafeWrap(found),
        Embeddings = UnsafeByteOperations.UnsafeWrap(rows),
        Encoded = (uint)encoded,
    };
}
