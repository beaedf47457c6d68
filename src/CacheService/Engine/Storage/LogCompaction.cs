using FASTER.core;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// Rewrites a data store's log without one namespace's records (a drop), and tells readers when a compaction overlapped
/// them so they read again what they missed.
/// </summary>
internal sealed class LogCompaction : IDisposable
{
    private readonly ManualResetEventSlim _idle = new(initialState: true);
    private long _generation;

    /// <summary>Counts compactions of a data store: odd while one runs.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>
    /// True when a compaction ran at any time since <paramref name="generation"/> was read. FASTER's compaction
    /// copies each live record to the log's tail and then moves the log's begin past the old copies; a lookup
    /// that took an old address just before that move reads as not found. A reader that missed rows while a
    /// compaction overlapped it waits for the compaction to end and reads again (<paramref name="generation"/>
    /// is then the new count); one that did not, or missed nothing, pays one read of a counter.
    /// </summary>
    public bool Overlapped(ref long generation)
    {
        var now = Generation;
        if (now == generation && (now & 1) == 0)
            return false;
        _idle.Wait();
        generation = Generation;
        return true;
    }

    /// <summary>Rewrites <paramref name="kv"/>'s log without the records whose key starts with <paramref name="fingerprint"/>. Writes must be shut out.</summary>
    public void Compact(KvStore kv, byte[] fingerprint)
    {
        var log = kv.Kv.Log;
        _idle.Reset();
        Interlocked.Increment(ref _generation);
        try
        {
            log.ShiftReadOnlyAddress(log.TailAddress, wait: true);
            using var session = kv.NewSession(new StoreFunctions());
            session.Compact(log.SafeReadOnlyAddress, CompactionType.Lookup, new DropCompaction(fingerprint));
        }
        finally
        {
            Interlocked.Increment(ref _generation);
            _idle.Set();
        }
    }

    public void Dispose() => _idle.Dispose();

    /// <summary>Compaction treats every record of the dropped namespace as deleted.</summary>
    private readonly struct DropCompaction(byte[] fingerprint) : ICompactionFunctions<SpanByte, SpanByte>
    {
        public bool IsDeleted(ref SpanByte key, ref SpanByte value) => key.AsReadOnlySpan().StartsWith(fingerprint);
    }
}
