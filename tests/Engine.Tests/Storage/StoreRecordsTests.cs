using System.Text;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>The store's metadata as bytes: records under a prefix, and named records; checksummed, checkpointed.</summary>
public sealed class StoreRecordsTests
{
    [Fact]
    public void Records_OfAnyLength_RoundTripIncludingEmptyAndLarge()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        var large = new byte[300_000];
        new Random(1).NextBytes(large);
        var first = Encoding.UTF8.GetBytes("{\"label\":\"cat\"}");
        byte[] values = [.. first, .. large];
        int[] offsets = [0, first.Length, first.Length, values.Length];
        session.PutRecords(new RecordKeys("O\u0001x"u8, [5, 6, 7]), values, offsets);
        var back = new byte[]?[4];
        var mask = new byte[1];
        Assert.Equal(3, session.GetRecords(new RecordKeys("O\u0001x"u8, [5, 6, 7, 8]), back, mask, "record"));
        Assert.Equal("{\"label\":\"cat\"}", Encoding.UTF8.GetString(back[0]!));
        Assert.Empty(back[1]!);
        Assert.Equal(large, back[2]);
        Assert.Null(back[3]);
        Assert.Equal(0b0111, mask[0]);
        Assert.Equal(0, store.LabelItems);
        var tooLarge = new byte[StoreSession.MaxValueBytes + 1];
        Assert.Throws<ArgumentException>(() => session.PutRecords(new RecordKeys("O\u0001x"u8, [1]), tooLarge, [0, tooLarge.Length]));
        Assert.Throws<ArgumentException>(() => new RecordKeys("Mx"u8, [1]));
    }

    [Fact]
    public void Metadata_PutGetOverwrite()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var session = store.NewSession();
        Assert.Null(session.GetMetadata("manifest/ds"));
        session.PutMetadata("manifest/ds", "a longer first value"u8);
        session.PutMetadata("manifest/ds", "short"u8);
        Assert.Equal("short"u8.ToArray(), session.GetMetadata("manifest/ds"));
        session.PutMetadata("manifest/ds", new byte[5000]);
        Assert.Equal(new byte[5000], session.GetMetadata("manifest/ds"));
        Assert.Throws<ArgumentException>(() => session.PutMetadata("", "x"u8));
    }

    [Fact]
    public async Task Metadata_SurvivesCheckpointAndReopen_WithWhatTheFinalCheckpointCovers()
    {
        using var dir = new TempDirectory("metadata");
        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            using var session = store.NewSession();
            session.PutMetadata("job/7", "state"u8);
            session.PutMetadata("job/8", "first"u8);
            await store.CheckpointAsync();
            session.PutMetadata("job/8", "changed"u8);
        }

        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            using var session = store.NewSession();
            Assert.Equal("state"u8.ToArray(), session.GetMetadata("job/7"));
            Assert.Equal("changed"u8.ToArray(), session.GetMetadata("job/8"));
        }
    }
}
