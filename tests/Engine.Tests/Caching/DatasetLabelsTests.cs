using System.Buffers.Binary;
using System.Text;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Caching;

/// <summary>Labels and index-key maps: stored under (dataset, split, index) in the store's records, checksummed, checkpointed.</summary>
public sealed class DatasetLabelsTests
{
    [Fact]
    public void GroupLabels_RoundTripAndMissingAreZero()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        DatasetLabels.PutGroups(session, "ds", "train", [1, 2, 3], [10, -20, long.MaxValue]);
        var groups = new long[] { 9, 9, 9, 9 };
        var mask = new byte[1];
        Assert.Equal(3, DatasetLabels.GetGroups(session, "ds", "train", [3, 2, 1, 4], groups, mask));
        Assert.Equal([long.MaxValue, -20, 10, 0], groups);
        Assert.Equal(0b0111, mask[0]);
        Assert.Equal(0, DatasetLabels.GetGroups(session, "ds", "test", [1], groups, mask));
    }

    [Fact]
    public void PairLabels_RoundTrip()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        var pairs = new[] { new PairLabel(1, 2, 0.5f, 7), new PairLabel(ulong.MaxValue, 0, -1.25f, -3) };
        DatasetLabels.PutPairs(session, "pairs", "train", [0, 1], pairs);
        var back = new PairLabel[3];
        var mask = new byte[1];
        Assert.Equal(2, DatasetLabels.GetPairs(session, "pairs", "train", [0, 1, 2], back, mask));
        Assert.Equal(pairs[0], back[0]);
        Assert.Equal(pairs[1], back[1]);
        Assert.Equal(default, back[2]);
    }

    [Fact]
    public void Labels_KeepTheStoredLayoutOfEarlierSaveDirs()
    {
        // kind ‖ len(dataset) ‖ dataset ‖ len(split) ‖ split, then the index (u64 BE); values: i64 LE, and pairs as
        // A, B (u64 LE), score (f32 LE), subgroup (i64 LE). Written by the storage API alone, read as labels.
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        byte[] Prefix(char kind) => [(byte)kind, 2, (byte)'d', (byte)'s', 5, .. "train"u8];
        var group = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(group, -42);
        session.PutRecords(new RecordKeys(Prefix('G'), [7]), group, 8, counted: true);
        var pair = new byte[28];
        BinaryPrimitives.WriteUInt64LittleEndian(pair, 3);
        BinaryPrimitives.WriteUInt64LittleEndian(pair.AsSpan(8), 4);
        BinaryPrimitives.WriteSingleLittleEndian(pair.AsSpan(16), 0.75f);
        BinaryPrimitives.WriteInt64LittleEndian(pair.AsSpan(20), 9);
        session.PutRecords(new RecordKeys(Prefix('P'), [1]), pair, 28, counted: true);

        var groups = new long[1];
        Assert.Equal(1, DatasetLabels.GetGroups(session, "ds", "train", [7], groups, new byte[1]));
        Assert.Equal(-42, groups[0]);
        var pairs = new PairLabel[1];
        Assert.Equal(1, DatasetLabels.GetPairs(session, "ds", "train", [1], pairs, new byte[1]));
        Assert.Equal(new PairLabel(3, 4, 0.75f, 9), pairs[0]);
        Assert.Equal(2, store.LabelItems);
    }

    [Fact]
    public void IndexKeys_MapPositionsToCustomAndContentKeys()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        var custom = ItemKeyBatch.Custom([Encoding.UTF8.GetBytes("a.png"), Encoding.UTF8.GetBytes("b.png")]);
        DatasetLabels.PutIndexKeys(session, "images", "train", [0, 1], custom);
        var hashes = new byte[32];
        ContentHash.Compute("x"u8, hashes.AsSpan(0, 16));
        ContentHash.Compute("y"u8, hashes.AsSpan(16, 16));
        DatasetLabels.PutIndexKeys(session, "texts", "train", [0, 1], ItemKeyBatch.Content(hashes));

        var mask = new byte[1];
        var back = DatasetLabels.GetIndexKeys(session, "images", "train", [1, 0, 2], mask);
        Assert.NotNull(back);
        Assert.Equal(KeyScheme.Custom, back.Scheme);
        Assert.Equal("b.png", Encoding.UTF8.GetString(back.CustomKey(0).Span));
        Assert.Equal("a.png", Encoding.UTF8.GetString(back.CustomKey(1).Span));
        Assert.Equal(0b011, mask[0]);

        var content = DatasetLabels.GetIndexKeys(session, "texts", "train", [0, 1], mask);
        Assert.NotNull(content);
        Assert.Equal(KeyScheme.Content, content.Scheme);
        Assert.Equal(hashes.AsSpan(0, 16).ToArray(), content.ContentKey(0).ToArray());
        Assert.Equal(hashes.AsSpan(16, 16).ToArray(), content.ContentKey(1).ToArray());
        Assert.Null(DatasetLabels.GetIndexKeys(session, "nothing", "train", [0], mask));
        Assert.Throws<ArgumentException>(() => DatasetLabels.PutIndexKeys(session, "images", "train", [0], ItemKeyBatch.Positional("images", "train", [0])));
    }

    [Fact]
    public async Task Labels_SurviveCheckpointAndReopen()
    {
        using var dir = new TempDirectory("labels");
        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            using var session = store.NewSession();
            DatasetLabels.PutPairs(session, "p", "train", [3], [new PairLabel(4, 5, 0.25f, 1)]);
            DatasetLabels.PutGroups(session, "g", "train", [3], [11]);
            await store.CheckpointAsync();
        }

        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            using var session = store.NewSession();
            var pairs = new PairLabel[1];
            Assert.Equal(1, DatasetLabels.GetPairs(session, "p", "train", [3], pairs, new byte[1]));
            Assert.Equal(new PairLabel(4, 5, 0.25f, 1), pairs[0]);
            var groups = new long[1];
            Assert.Equal(1, DatasetLabels.GetGroups(session, "g", "train", [3], groups, new byte[1]));
            Assert.Equal(11, groups[0]);
            Assert.Equal(2, store.LabelItems);
        }
    }
}
