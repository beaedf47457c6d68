using System.Diagnostics;

namespace EmbedCache.Engine.Remote;

public enum BreakerState
{
    /// <summary>Calls go to the cluster.</summary>
    Closed,

    /// <summary>Calls skip the cluster until the open time is over.</summary>
    Open,

    /// <summary>The open time is over: one call probes the cluster; its outcome closes or reopens the breaker.</summary>
    HalfOpen,
}

/// <summary>
/// Bounds what an unreachable or slow cluster costs: after <c>failures</c> consecutive failed calls (each bounded by
/// the operation timeout) the breaker opens and calls skip the cluster for <c>openFor</c>; then one call probes it.
/// Thread-safe.
/// </summary>
internal sealed class CircuitBreaker(int failures, TimeSpan openFor, TimeProvider? time = null)
{
    private readonly Lock _lock = new();
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private BreakerState _state = BreakerState.Closed;
    private int _consecutive;
    private long _openUntil;
    private bool _probing;
    private long _opened;

    public BreakerState State
    {
        get
        {
            lock (_lock)
                return _state == BreakerState.Open && _time.GetTimestamp() >= _openUntil ? BreakerState.HalfOpen : _state;
        }
    }

    /// <summary>Times the breaker opened.</summary>
    public long Opened => Interlocked.Read(ref _opened);

    /// <summary>True when a call may go to the cluster now (in half-open state, only the one probe).</summary>
    public bool Allow()
    {
        lock (_lock)
        {
            switch (_state)
            {
                case BreakerState.Closed:
                    return true;
                case BreakerState.Open when _time.GetTimestamp() < _openUntil:
                    return false;
                case BreakerState.Open:
                    _state = BreakerState.HalfOpen;
                    _probing = true;
                    return true;
                default:
                    if (_probing)
                        return false;
                    _probing = true;
                    return true;
            }
        }
    }

    /// <summary>How long until the breaker lets a probe through (zero when it does now).</summary>
    public TimeSpan UntilProbe
    {
        get
        {
            lock (_lock)
            {
                if (_state != BreakerState.Open)
                    return TimeSpan.Zero;
                var left = _openUntil - _time.GetTimestamp();
                return left <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds((double)left / _time.TimestampFrequency);
            }
        }
    }

    public void Success()
    {
        lock (_lock)
        {
            _state = BreakerState.Closed;
            _consecutive = 0;
            _probing = false;
        }
    }

    public void Failure()
    {
        lock (_lock)
        {
            _consecutive++;
            if (_state == BreakerState.HalfOpen || _consecutive >= failures)
            {
                if (_state != BreakerState.Open)
                    Interlocked.Increment(ref _opened);
                _state = BreakerState.Open;
                _openUntil = _time.GetTimestamp() + (long)(openFor.TotalSeconds * _time.TimestampFrequency);
                _probing = false;
            }
        }
    }

    internal static long Now => Stopwatch.GetTimestamp();
}
