using System.Globalization;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.StoreCrashChild;

// usage: EmbedCache.StoreCrashChild <saveDir> <checkpointedItems>
// Writes items 0..N-1 (with labels and a metadata record), checkpoints and prints
// "CHECKPOINT <version> <items>", then overwrites items 0..99 with other bytes and keeps adding items
// (printing "WRITING <next>") until it is killed. Row bytes come from CrashRows, shared with the test.
var saveDir = args[0];
var checkpointed = int.Parse(args[1], CultureInfo.InvariantCulture);
const int batch = 256;

using var store = EmbeddingStore.Open(new StoreOptions
{
    SaveDir = saveDir,
    CpuMemoryBytes = 4L << 20, // small: writes after the checkpoint reach the log file before the kill
    CheckpointInterval = TimeSpan.Zero,
});
var ns = store.Register(CrashRows.Spec);
using var session = store.NewSession();
for (var first = 0; first < checkpointed; first += batch)
{
    var n = Math.Min(batch, checkpointed - first);
    session.Put(ns, ItemKeyBatch.Positional("crash", "train", CrashRows.Range(first, n)), CrashRows.Rows(first, n, generation: 0));
    var groups = new long[n];
    for (var i = 0; i < n; i++)
        groups[i] = (first + i) % 13;
    DatasetLabels.PutGroups(session, "crash", "train", CrashRows.Range(first, n), groups);
}

session.PutMetadata("job/crash", "committed"u8);
var checkpoint = await store.CheckpointAsync();
Console.WriteLine($"CHECKPOINT {checkpoint.Version} {checkpointed}");

// After the checkpoint: overwrite checkpointed items, change metadata, add new items, forever.
session.Put(ns, ItemKeyBatch.Positional("crash", "train", CrashRows.Range(0, 100)), CrashRows.Rows(0, 100, generation: 1));
session.PutMetadata("job/crash", "not committed"u8);
for (var next = checkpointed; ; next += batch)
{
    session.Put(ns, ItemKeyBatch.Positional("crash", "train", CrashRows.Range(next, batch)), CrashRows.Rows(next, batch, generation: 0));
    Console.WriteLine($"WRITING {next + batch}");
}
