using System.Buffers;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using Google.Protobuf;

namespace EmbedCache.CacheService.Tests;

/// <summary>The client's pooled DatasetBatch and LookupResponse readers against the generated parser, and against the real service.</summary>
public sealed class PooledBatchTests
{
    private static DatasetBatch Sample(LabelBatch labels)
    {
        var batch = new DatasetBatch { Offset = 300, Total = 1438, Indices = { 5, 0, 1UL << 40, 127, 128 }, Labels = labels };
        var rows = new byte[5 * 8 * 4];
        new Random(1).NextBytes(rows);
        batch.Results.Add(new EncoderEmbeddings
        {
            Encoder = "random-mlp", Fingerprint = "f00d", Dim = 8, Dtype = DType.Float32, Found = ByteString.CopyFrom(0x1F), Embeddings = ByteString.CopyFrom(rows), Encoded = 2,
        });
        batch.Results.Add(new EncoderEmbeddings { Encoder = "ünï", Dim = 4, Dtype = DType.Float16, Found = ByteString.CopyFrom(0x00), Embeddings = ByteString.CopyFrom(new byte[40]) });
        return batch;
    }

    public static TheoryData<string> Labels() => ["none", "groups", "pairs", "opaque"];

    private static LabelBatch? LabelsOf(string kind) => kind switch
    {
        "groups" => new LabelBatch { Found = ByteString.CopyFrom(0x1F), Groups = new GroupLabels { GroupIds = { 1, -2, 3, long.MaxValue, 0 } } },
        "pairs" => new LabelBatch { Pairs = new PairLabels { AIndex = { 1, 2 }, BIndex = { 3, 4 }, Score = { 0.5f, -1f }, Subgroup = { 7, 8 } } },
        "opaque" => new LabelBatch { Opaque = new OpaqueLabels { Values = { ByteString.CopyFromUtf8("a"), ByteString.Empty } } },
        _ => null,
    };

    [Theory]
    [MemberData(nameof(Labels))]
    public void Parse_MatchesTheGeneratedParser_OnOneAndManySegments(string labels)
    {
        var original = Sample(LabelsOf(labels)!);
        var bytes = original.ToByteArray();

        var whole = PooledBatches.Parse(new ReadOnlySequence<byte>(bytes));
        var split = PooledBatches.Parse(Segmented(bytes, 7));

        Assert.Equal(original, whole.Message);
        Assert.Equal(original, split.Message);
        whole.Release();
        split.Release();
    }

    [Fact]
    public void Parse_SkipsFieldsItDoesNotKnow_AndRejectsTruncatedMessages()
    {
        var original = Sample(LabelsOf("groups")!);
        using var extra = new MemoryStream();
        var output = new CodedOutputStream(extra);
        original.WriteTo(output);
        output.WriteTag(99, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFromUtf8("from a newer service"));
        output.WriteTag(98, WireFormat.WireType.Fixed64);
        output.WriteFixed64(42);
        output.Flush();

        Assert.Equal(original, PooledBatches.Parse(new ReadOnlySequence<byte>(extra.ToArray())).Message);
        var bytes = original.ToByteArray();
        Assert.Throws<InvalidDataException>(() => PooledBatches.Parse(new ReadOnlySequence<byte>(bytes.AsMemory(0, bytes.Length - 3))));
    }

    [Fact]
    public async Task PooledEpoch_YieldsExactlyTheBatchesOfTheCopyingOne()
    {
        await using var service = await InProcessService.StartAsync();
        using var client = new EmbedCacheClient(service.Channel);
        var fill = new PrewarmRequest { Dataset = "digits", BatchSize = 256, Workers = 2, Splits = { "train" }, Encoders = { "random-mlp" } };
        await Contract.PrewarmToEndAsync(new CacheAdmin.CacheAdminClient(service.Channel), fill);
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { "random-mlp" }, BatchSize = 100, Shuffle = true, Seed = 3, Epoch = 1, IncludeLabels = true };

        var copied = new List<DatasetBatch>();
        await foreach (var b in client.StreamEpochAsync(request))
            copied.Add(b);
        var pooled = new List<DatasetBatch>();
        await foreach (var b in client.StreamEpochPooledAsync(request))
            pooled.Add(DatasetBatch.Parser.ParseFrom(b.ToByteArray())); // a deep copy while the pooled buffer is still ours (Clone shares bytes)

        Assert.Equal(15, copied.Count);
        Assert.Equal(copied, pooled);
    }

    [Theory]
    [MemberData(nameof(Labels))]
    public void ParseLookup_MatchesTheGeneratedParser_OnOneAndManySegments(string labels)
    {
        var batch = Sample(LabelsOf(labels)!);
        var original = new LookupResponse { RequestId = 1UL << 33, Count = 5, Labels = batch.Labels, Results = { batch.Results } };
        var bytes = original.ToByteArray();

        var whole = PooledBatches.ParseLookup(new ReadOnlySequence<byte>(bytes));
        var split = PooledBatches.ParseLookup(Segmented(bytes, 5));

        Assert.Equal(original, whole.Message);
        Assert.Equal(original, split.Message);
        whole.Release();
        split.Release();
        Assert.Throws<InvalidDataException>(() => PooledBatches.ParseLookup(new ReadOnlySequence<byte>(bytes.AsMemory(0, bytes.Length - 1))));
    }

    [Fact]
    public async Task PooledLookupStream_AnswersExactlyAsTheCopyingOne_HitsMissesAndLabels()
    {
        await using var service = await InProcessService.StartAsync();
        using var client = new EmbedCacheClient(service.Channel);
        var fill = new PrewarmRequest { Dataset = "digits", BatchSize = 256, Splits = { "train" }, Encoders = { "random-mlp" } };
        await Contract.PrewarmToEndAsync(new CacheAdmin.CacheAdminClient(service.Channel), fill);
        var someVal = Contract.Positional("random-mlp", "digits", "val", [.. Enumerable.Range(0, 16).Select(i => (ulong)i * 4)]);
        someVal.Features = Contract.Vectors(64, [.. Enumerable.Range(0, 16).Select(i => Contract.Vector(64, i))]);
        await new EmbeddingCache.EmbeddingCacheClient(service.Channel).LookupAsync(someVal);

        LookupRequest Request(int round)
        {
            // Stored train indices and, every third round, val indices of which only every fourth is stored (by the
            // read-through above; val is not prewarmed, so it has neither a known size nor labels): hits and misses.
            var keys = new PositionalKeys { Dataset = "digits", Split = round % 3 == 2 ? "val" : "train" };
            for (var i = 0; i < 64; i++)
                keys.Indices.Add(round % 3 == 2 ? (ulong)i : (ulong)(round * 61 + i * 7) % 1438UL);
            return new LookupRequest { Keys = new KeyBatch { Positional = keys }, Encoders = { "random-mlp" }, IncludeLabels = true };
        }

        var copied = new List<LookupResponse>();
        await using (var stream = client.OpenLookupStream())
        {
            for (var round = 0; round < 9; round++)
                copied.Add(await stream.LookupAsync(Request(round)));
        }

        var pooled = new List<LookupResponse>();
        await using (var stream = client.OpenPooledLookupStream())
        {
            for (var round = 0; round < 9; round++)
                pooled.Add(LookupResponse.Parser.ParseFrom((await stream.LookupAsync(Request(round))).ToByteArray())); // deep copy before the next call reuses the buffer
        }

        Assert.Equal(copied, pooled);
        Assert.Contains(copied, r => r.Results[0].Found.Any(b => b is not (0xFF or 0x00))); // hits and misses in one response
        Assert.All(copied, r => Assert.Equal(64 * 128 * 4, r.Results[0].Embeddings.Length));
    }

    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int size)
    {
        Segment? first = null, last = null;
        for (var i = 0; i < bytes.Length; i += size)
        {
            var chunk = bytes.AsMemory(i, Math.Min(size, bytes.Length - i));
            last = last is null ? first = new Segment(chunk, 0) : last.Append(chunk);
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long index)
        {
            Memory = memory;
            RunningIndex = index;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
