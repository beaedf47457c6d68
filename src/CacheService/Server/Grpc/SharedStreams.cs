namespace EmbedCache.Server.Grpc;

/// <summary>Shared-memory epoch streams of this service: how many rings are open now, and how many were ever.</summary>
public sealed class SharedStreams
{
    private long _open;
    private long _total;

    public long Open => Interlocked.Read(ref _open);

    public long Total => Interlocked.Read(ref _total);

    public IDisposable Track()
    {
        Interlocked.Increment(ref _open);
        Interlocked.Increment(ref _total);
        return new Closer(this);
    }

    private sealed class Closer(SharedStreams owner) : IDisposable
    {
        private int _closed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0)
                Interlocked.Decrement(ref owner._open);
        }
    }
}
