using System.Collections.Concurrent;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Engine.Caching;

/// <summary>
/// FASTER sessions for request handlers, which hop threads between awaits: a handler rents a
/// session for one synchronous store call and returns it, so no session is ever used by two
/// threads at once and sessions are not created per request.
/// </summary>
public sealed class SessionPool : IDisposable
{
    private readonly EmbeddingStore _store;
    private readonly ConcurrentBag<StoreSession> _idle = [];
    private readonly int _maxIdle;
    private bool _disposed;

    public SessionPool(EmbeddingStore store, int maxIdle = 64)
    {
        _store = store;
        _maxIdle = maxIdle;
    }

    public Lease Rent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Lease(this, _idle.TryTake(out var s) ? s : _store.NewSession());
    }

    private void Return(StoreSession session)
    {
        if (_disposed || _idle.Count >= _maxIdle)
            session.Dispose();
        else
            _idle.Add(session);
    }

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out var s))
            s.Dispose();
    }

    /// <summary>A rented session; dispose returns it.</summary>
    public readonly struct Lease(SessionPool pool, StoreSession session) : IDisposable
    {
        public StoreSession Session { get; } = session;

        public void Dispose() => pool.Return(Session);
    }
}
