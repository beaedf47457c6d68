using System.Collections.Concurrent;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Engine.Caching;

/// <summary>An encoder as the cache runs it: the model, its store namespace and its counters.</summary>
public sealed class EncoderEntry
{
    private long _hits;
    private long _misses;
    private long _encoded;

    private volatile NamespaceHandle _namespace;

    internal EncoderEntry(IEncoder encoder, NamespaceHandle ns)
    {
        Encoder = encoder;
        _namespace = ns;
        RowBytes = encoder.DType.RowBytes(encoder.Dim);
    }

    public IEncoder Encoder { get; }

    /// <summary>The store namespace; replaced by a fresh one when the namespace is dropped.</summary>
    public NamespaceHandle Namespace => _namespace;

    internal void Rebind(NamespaceHandle ns) => _namespace = ns;

    public string Name => Encoder.Name;

    public int Dim => Encoder.Dim;

    public EmbeddingDType DType => Encoder.DType;

    public Fingerprint Fingerprint => Encoder.Fingerprint;

    public Tier Tier => Namespace.Tier;

    /// <summary>Bytes of one stored embedding.</summary>
    public int RowBytes { get; }

    public long Hits => Interlocked.Read(ref _hits);

    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>Items this encoder has encoded since start (read-through and prewarm).</summary>
    public long Encoded => Interlocked.Read(ref _encoded);

    /// <summary>Missing keys being encoded right now, so concurrent requests encode each once.</summary>
    internal ConcurrentDictionary<ByteKey, Task<byte[]>> InFlight { get; } = new();

    internal void RecordLookup(int hits, int misses)
    {
        Interlocked.Add(ref _hits, hits);
        Interlocked.Add(ref _misses, misses);
    }

    internal void RecordEncoded(int count) => Interlocked.Add(ref _encoded, count);
}

/// <summary>Bytes compared by content, for dictionary keys.</summary>
internal readonly struct ByteKey : IEquatable<ByteKey>
{
    private readonly byte[] _bytes;
    private readonly int _hash;

    public ByteKey(byte[] bytes)
    {
        _bytes = bytes;
        var h = new HashCode();
        h.AddBytes(bytes);
        _hash = h.ToHashCode();
    }

    public bool Equals(ByteKey other) => _bytes.AsSpan().SequenceEqual(other._bytes);

    public override bool Equals(object? obj) => obj is ByteKey k && Equals(k);

    public override int GetHashCode() => _hash;
}
