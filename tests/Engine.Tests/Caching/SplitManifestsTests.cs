using System.Text;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Storage;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Caching;

/// <summary>Split manifests: one owner reads, changes and writes them; their stored JSON is the one earlier SaveDirs hold.</summary>
public sealed class SplitManifestsTests
{
    private static readonly Fingerprint A = new(0x0123456789abcdefUL);
    private static readonly Fingerprint B = new(42);

    [Fact]
    public void AManifestStoredByAnEarlierVersion_ReadsWithItsFingerprints_AndChangesKeepItsShape()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var sessions = new SessionPool(store);
        using (var lease = sessions.Rent())
        {
            lease.Session.PutMetadata("split\u001fds\u001ftrain", Encoding.UTF8.GetBytes(
                $"{{\"Dataset\":\"ds\",\"Split\":\"train\",\"Items\":10,\"Pairs\":0,\"Labels\":1,\"KeyScheme\":0,\"CompleteFor\":[\"{A}\",\"{B}\"],\"LabelsComplete\":true}}"));
            lease.Session.PutMetadata("splits", "[\"split\\u001fds\\u001ftrain\"]"u8);
        }

        var splits = new SplitManifests(sessions);
        var manifest = splits.Get("ds", "train");
        Assert.NotNull(manifest);
        Assert.Equal(10, manifest.Items);
        Assert.Equal(DatasetLabelKind.Group, manifest.Labels);
        Assert.True(manifest.LabelsComplete);
        Assert.Equal(new HashSet<Fingerprint> { A, B }, manifest.CompleteFor.ToHashSet());

        splits.Forget(A);
        Assert.Equal([B], splits.Get("ds", "train")!.CompleteFor);
        using (var lease = sessions.Rent())
        {
            var json = Encoding.UTF8.GetString(lease.Session.GetMetadata("split\u001fds\u001ftrain")!);
            Assert.Contains($"\"CompleteFor\":[\"{B}\"]", json, StringComparison.Ordinal);
            Assert.Contains("\"Items\":10", json, StringComparison.Ordinal);
        }

        // A new prewarm of the split records its counts and keeps what was complete.
        splits.Record("ds", "train", 12, 0, DatasetLabelKind.Group, DatasetKeyScheme.Positional);
        Assert.Equal(12, splits.Get("ds", "train")!.Items);
        Assert.Equal([B], splits.Get("ds", "train")!.CompleteFor);
    }

    [Fact]
    public void Record_ThenMarkComplete_AddsTheEncoders_AndForgetRemovesOneEverywhere()
    {
        using var store = EmbeddingStore.Open(Options(null));
        using var sessions = new SessionPool(store);
        var splits = new SplitManifests(sessions);
        Assert.Null(splits.Get("ds", "train"));
        splits.Record("ds", "train", 5, 0, DatasetLabelKind.None, DatasetKeyScheme.Custom);
        splits.Record("ds", "val", 2, 0, DatasetLabelKind.None, DatasetKeyScheme.Custom);
        Assert.False(splits.Get("ds", "train")!.LabelsComplete);
        splits.MarkComplete("ds", "train", [A, B]);
        splits.MarkComplete("ds", "val", [A]);
        Assert.True(splits.Get("ds", "train")!.LabelsComplete);
        Assert.Equal(DatasetKeyScheme.Custom, splits.Get("ds", "train")!.KeyScheme);

        splits.Forget(A);
        Assert.Equal([B], splits.Get("ds", "train")!.CompleteFor);
        Assert.Empty(splits.Get("ds", "val")!.CompleteFor);
    }
}
