using System.Text;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>Labels, index-key maps and metadata: stored under (dataset, split, index), checksummed, checkpointed.</summary>
public sealed class LabelStoreTests
{
    [Fact]
    public void GroupLabels_RoundTripAndMissingAreZero()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        session.PutGroupLabels("ds", "train", [1, 2, 3], [10, -20, long.MaxValue]);
        var groups = new long[] { 9, 9, 9, 9 };
        var mask = new byte[1];
        Assert.Equal(3, session.GetGroupLabels("ds", "train", [3, 2, 1, 4], groups, mask));
        Assert.Equal([long.MaxValue, -20, 10, 0], groups);
        Assert.Equal(0b0111, mask[0]);
        Assert.Equal(0, session.GetGroupLabels("ds", "test", [1], groups, mask));
    }

    [Fact]
    public void PairLabels_RoundTrip()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        var pairs = new[] { new PairLabel(1, 2, 0.5f, 7), new PairLabel(ulong.MaxValue, 0, -1.25f, -3) };
        session.PutPairLabels("pairs", "train", [0, 1], pairs);
        var back = new PairLabel[3];
        var mask = new byte[1];
        Assert.Equal(2, session.GetPairLabels("pairs", "train", [0, 1, 2], back, mask));
        Assert.Equal(pairs[0], back[0]);
        Assert.Equal(pairs[1], back[1]);
        Assert.Equal(default, back[2]);
    }

    [Fact]
    public void OpaqueLabels_RoundTripIncludingEmptyAndLarge()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        var large = new byte[300_000];
        new Random(1).NextBytes(large);
        session.PutOpaqueLabels("ds", "s", [5, 6, 7], [Encoding.UTF8.GetBytes("{\"label\":\"cat\"}"), Array.Empty<byte>(), large]);
        var labels = new byte[]?[4];
        var mask = new byte[1];
        Assert.Equal(3, session.GetOpaqueLabels("ds", "s", [5, 6, 7, 8], labels, mask));
        Assert.Equal("{\"label\":\"cat\"}", Encoding.UTF8.GetString(labels[0]!));
        Assert.Empty(labels[1]!);
        Assert.Equal(large, labels[2]);
        Assert.Null(labels[3]);
        Assert.Throws<ArgumentException>(() => session.PutOpaqueLabels("ds", "s", [1], [new byte[StoreSession.MaxValueBytes + 1]]));
    }

    [Fact]
    public void IndexKeys_MapPositionsToCustomAndContentKeys()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        var custom = ItemKeyBatch.Custom([Encoding.UTF8.GetBytes("a.png"), Encoding.UTF8.GetBytes("b.png")]);
        session.PutIndexKeys("images", "train", [0, 1], custom);
        var hashes = new byte[32];
        ContentHash.Compute("x"u8, hashes.AsSpan(0, 16));
        ContentHash.Compute("y"u8, hashes.AsSpan(16, 16));
        session.PutIndexKeys("texts", "train", [0, 1], ItemKeyBatch.Content(hashes));

        var mask = new byte[1];
        var back = session.GetIndexKeys("images", "train", [1, 0, 2], mask);
        Assert.NotNull(back);
        Assert.Equal(KeyScheme.Custom, back.Scheme);
        Assert.Equal("b.png", Encoding.UTF8.GetString(back.CustomKey(0).Span));
        Assert.Equal("a.png", Encoding.UTF8.GetString(back.CustomKey(1).Span));
        Assert.Equal(0b011, mask[0]);

        var content = session.GetIndexKeys("texts", "train", [0, 1], mask);
        Assert.NotNull(content);
        Assert.Equal(KeyScheme.Content, content.Scheme);
        Assert.Equal(hashes.AsSpan(0, 16).ToArray(), content.ContentKey(0).ToArray());
        Assert.Equal(hashes.AsSpan(16, 16).ToArray(), content.ContentKey(1).ToArray());
        Assert.Null(session.GetIndexKeys("nothing", "train", [0], mask));
        Assert.Throws<ArgumentException>(() => session.PutIndexKeys("images", "train", [0], ItemKeyBatch.Positional("images", "train", [0])));
    }

    [Fact]
    public void Metadata_PutGetOverwriteDelete()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        Assert.Null(session.GetMetadata("manifest/ds"));
        session.PutMetadata("manifest/ds", "a longer first value"u8);
        session.PutMetadata("manifest/ds", "short"u8);
        Assert.Equal("short"u8.ToArray(), session.GetMetadata("manifest/ds"));
        session.PutMetadata("manifest/ds", new byte[5000]);
        Assert.Equal(new byte[5000], session.GetMetadata("manifest/ds"));
        session.DeleteMetadata("manifest/ds");
        Assert.Null(session.GetMetadata("manifest/ds"));
        Assert.Throws<ArgumentException>(() => session.PutMetadata("", "x"u8));
    }

    [Fact]
    public async Task LabelsAndMetadata_SurviveCheckpointAndReopen()
    {
        using var dir = new TempDirectory("labels");
        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            using var session = store.NewSession();
            session.PutPairLabels("p", "train", [3], [new PairLabel(4, 5, 0.25f, 1)]);
            session.PutOpaqueLabels("o", "train", [3], ["opaque"u8.ToArray()]);
            session.PutMetadata("job/7", "state"u8);
            session.PutMetadata("job/8", "gone"u8);
            await store.CheckpointAsync();
            session.DeleteMetadata("job/8");
        }

        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            using var session = store.NewSession();
            var pairs = new PairLabel[1];
            Assert.Equal(1, session.GetPairLabels("p", "train", [3], pairs, new byte[1]));
            Assert.Equal(new PairLabel(4, 5, 0.25f, 1), pairs[0]);
            var opaque = new byte[]?[1];
            Assert.Equal(1, session.GetOpaqueLabels("o", "train", [3], opaque, new byte[1]));
            Assert.Equal("opaque"u8.ToArray(), opaque[0]);
            Assert.Equal("state"u8.ToArray(), session.GetMetadata("job/7"));
            Assert.Null(session.GetMetadata("job/8"));
        }
    }
}
