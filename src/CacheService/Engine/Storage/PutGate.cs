namespace EmbedCache.Engine.Storage;

/// <summary>
/// Lets write batches run concurrently, and lets a checkpoint or a drop shut them out for a moment: while it is
/// closed, no write is in flight, so item counts taken then match exactly what the FASTER version boundary
/// includes. One interlocked increment per write batch; no thread affinity (the closer is async).
/// </summary>
internal sealed class PutGate : IDisposable
{
    private readonly ManualResetEventSlim _open = new(initialState: true);
    private int _active;
    private volatile bool _closed;

    public void Enter()
    {
        while (true)
        {
            if (!_closed)
            {
                Interlocked.Increment(ref _active);
                if (!_closed)
                    return;
                Interlocked.Decrement(ref _active);
            }

            _open.Wait();
        }
    }

    public void Exit() => Interlocked.Decrement(ref _active);

    /// <summary>
    /// Stops new writes and waits for the running ones to finish. Callers serialise Close/Open. Cancelled, it opens
    /// the gate again before it throws.
    /// </summary>
    public async Task CloseAsync(CancellationToken cancellationToken = default)
    {
        _open.Reset();
        _closed = true;
        var spins = 0;
        try
        {
            while (Volatile.Read(ref _active) != 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (++spins < 50)
                    await Task.Yield();
                else
                    await Task.Delay(1, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            Open();
            throw;
        }
    }

    public void Open()
    {
        _closed = false;
        _open.Set();
    }

    public void Dispose() => _open.Dispose();
}
