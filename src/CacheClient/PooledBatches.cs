using System.Buffers;
using System.Text;
using EmbedCache.Contract.V1;
using Google.Protobuf;
using Grpc.Core;

namespace EmbedCache.CacheClient;

/// <summary>
/// Reads <see cref="DatasetBatch"/> and <see cref="LookupResponse"/> messages into pooled buffers. The generated
/// parser copies every embeddings field into a new array (for a 1,024-row float32 batch, 1.5 MB on the large
/// object heap per message, which only a gen2 collection frees: with several trainers in one process those
/// collections pause every stream); this one copies the whole message once into a rented array and parses it in
/// place, so the embeddings stay a slice of that array.
/// </summary>
internal static class PooledBatches
{
    /// <summary>StreamDataset with a response marshaller that parses into a rented buffer.</summary>
    public static readonly Method<StreamDatasetRequest, Pooled<DatasetBatch>> StreamDataset = StreamDatasetMethod(Parse);

    /// <summary>StreamDataset parsed by the generated parser: each batch owns its bytes (nothing to release).</summary>
    public static readonly Method<StreamDatasetRequest, Pooled<DatasetBatch>> StreamDatasetOwned =
        StreamDatasetMethod(payload => new Pooled<DatasetBatch>(DatasetBatch.Parser.ParseFrom(payload), null));

    /// <summary>GetEmbeddings with a response marshaller that parses into a rented buffer.</summary>
    public static readonly Method<LookupRequest, Pooled<LookupResponse>> GetEmbeddings = GetEmbeddingsMethod(ParseLookup);

    /// <summary>GetEmbeddings parsed by the generated parser: each response owns its bytes.</summary>
    public static readonly Method<LookupRequest, Pooled<LookupResponse>> GetEmbeddingsOwned =
        GetEmbeddingsMethod(payload => new Pooled<LookupResponse>(LookupResponse.Parser.ParseFrom(payload), null));

    private static Method<StreamDatasetRequest, Pooled<DatasetBatch>> StreamDatasetMethod(Func<ReadOnlySequence<byte>, Pooled<DatasetBatch>> parse) => new(
        MethodType.ServerStreaming,
        EmbeddingCache.Descriptor.FullName,
        "StreamDataset",
        Marshallers.Create(r => r.ToByteArray(), StreamDatasetRequest.Parser.ParseFrom),
        ReadOnly(parse));

    private static Method<LookupRequest, Pooled<LookupResponse>> GetEmbeddingsMethod(Func<ReadOnlySequence<byte>, Pooled<LookupResponse>> parse) => new(
        MethodType.DuplexStreaming,
        EmbeddingCache.Descriptor.FullName,
        "GetEmbeddings",
        Marshallers.Create(r => r.ToByteArray(), LookupRequest.Parser.ParseFrom),
        ReadOnly(parse));

    private static Marshaller<Pooled<T>> ReadOnly<T>(Func<ReadOnlySequence<byte>, Pooled<T>> parse) where T : class => new(
        (Action<Pooled<T>, SerializationContext>)((_, _) => throw new NotSupportedException("the client only reads these messages")),
        (Func<DeserializationContext, Pooled<T>>)(ctx => parse(ctx.PayloadAsReadOnlySequence())));

    /// <summary>A parsed message and the rented array its embeddings point into (null when the message owns its bytes).</summary>
    public sealed class Pooled<T>(T message, byte[]? buffer) where T : class
    {
        private byte[]? _buffer = buffer;

        public T Message { get; } = message;

        /// <summary>Returns the buffer to the pool; the message's embeddings must not be read after this.</summary>
        public void Release()
        {
            if (Interlocked.Exchange(ref _buffer, null) is { } b)
                ArrayPool<byte>.Shared.Return(b);
        }
    }

    public static Pooled<DatasetBatch> Parse(ReadOnlySequence<byte> payload) => Rented(payload, ParseBatch);

    public static Pooled<LookupResponse> ParseLookup(ReadOnlySequence<byte> payload) => Rented(payload, ParseLookupResponse);

    private static Pooled<T> Rented<T>(ReadOnlySequence<byte> payload, Func<byte[], int, T> parse) where T : class
    {
        var length = checked((int)payload.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            payload.CopyTo(buffer);
            return new Pooled<T>(parse(buffer, length), buffer);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>Parses a LookupResponse held in <paramref name="buffer"/>[0..length); embeddings are slices of it.</summary>
    internal static LookupResponse ParseLookupResponse(byte[] buffer, int length)
    {
        var response = new LookupResponse();
        var r = new Reader(buffer, 0, length);
        while (!r.End)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, Wire.Varint):
                    response.RequestId = r.Varint();
                    break;
                case (2, Wire.Varint):
                    response.Count = (uint)r.Varint();
                    break;
                case (3, Wire.Delimited):
                    var (at, size) = r.Delimited();
                    response.Results.Add(ParseEmbeddings(buffer, at, size));
                    break;
                case (4, Wire.Delimited):
                    response.Labels = MergeLabels(response.Labels, buffer, r.Delimited());
                    break;
                default:
                    r.Skip(wire);
                    break;
            }
        }

        return response;
    }

    /// <summary>Parses a DatasetBatch held in <paramref name="buffer"/>[0..length); embeddings are slices of it.</summary>
    internal static DatasetBatch ParseBatch(byte[] buffer, int length)
    {
        var batch = new DatasetBatch();
        var r = new Reader(buffer, 0, length);
        while (!r.End)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, Wire.Varint):
                    batch.Offset = r.Varint();
                    break;
                case (2, Wire.Varint):
                    batch.Total = r.Varint();
                    break;
                case (3, Wire.Delimited):
                    var (start, count) = r.Delimited();
                    var packed = new Reader(buffer, start, start + count);
                    while (!packed.End)
                        batch.Indices.Add(packed.Varint());
                    break;
                case (3, Wire.Varint):
                    batch.Indices.Add(r.Varint());
                    break;
                case (4, Wire.Delimited):
                    var (at, size) = r.Delimited();
                    batch.Results.Add(ParseEmbeddings(buffer, at, size));
                    break;
                case (5, Wire.Delimited):
                    batch.Labels = MergeLabels(batch.Labels, buffer, r.Delimited());
                    break;
                default:
                    r.Skip(wire);
                    break;
            }
        }

        return batch;
    }

    /// <summary>A repeated occurrence of a message field merges into the first, as protobuf parsers do.</summary>
    private static LabelBatch MergeLabels(LabelBatch? existing, byte[] buffer, (int Start, int Length) field)
    {
        var labels = LabelBatch.Parser.ParseFrom(buffer.AsSpan(field.Start, field.Length));
        if (existing is null)
            return labels;
        existing.MergeFrom(labels);
        return existing;
    }

    private static EncoderEmbeddings ParseEmbeddings(byte[] buffer, int start, int length)
    {
        var e = new EncoderEmbeddings();
        var r = new Reader(buffer, start, start + length);
        while (!r.End)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, Wire.Delimited):
                    var (nameAt, nameLength) = r.Delimited();
                    e.Encoder = Encoding.UTF8.GetString(buffer, nameAt, nameLength);
                    break;
                case (2, Wire.Delimited):
                    var (fpAt, fpLength) = r.Delimited();
                    e.Fingerprint = Encoding.UTF8.GetString(buffer, fpAt, fpLength);
                    break;
                case (3, Wire.Varint):
                    e.Dim = (uint)r.Varint();
                    break;
                case (4, Wire.Varint):
                    e.Dtype = (DType)(int)r.Varint();
                    break;
                case (5, Wire.Delimited):
                    var (foundAt, foundLength) = r.Delimited();
                    e.Found = ByteString.CopyFrom(buffer, foundAt, foundLength);
                    break;
                case (6, Wire.Delimited):
                    var (rowsAt, rowsLength) = r.Delimited();
                    e.Embeddings = UnsafeByteOperations.UnsafeWrap(buffer.AsMemory(rowsAt, rowsLength));
                    break;
                case (7, Wire.Varint):
                    e.Encoded = (uint)r.Varint();
                    break;
                default:
                    r.Skip(wire);
                    break;
            }
        }

        return e;
    }

    private enum Wire
    {
        Varint = 0,
        Fixed64 = 1,
        Delimited = 2,
        Fixed32 = 5,
    }

    /// <summary>Protocol-buffers wire format over buffer[position..end).</summary>
    private ref struct Reader(byte[] buffer, int position, int end)
    {
        private int _position = position;

        public readonly bool End => _position >= end;

        public (int Field, Wire Wire) Tag()
        {
            var tag = Varint();
            var field = (int)(tag >> 3);
            if (field == 0)
                throw Malformed("field number 0");
            return (field, (Wire)(tag & 7));
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_position >= end)
                    throw Malformed("truncated varint");
                var b = buffer[_position++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                    return value;
            }

            throw Malformed("varint longer than 10 bytes");
        }

        public (int Start, int Length) Delimited()
        {
            var length = Varint();
            if (length > (ulong)(end - _position))
                throw Malformed("a length-delimited field runs past the end of its message");
            var start = _position;
            _position += (int)length;
            return (start, (int)length);
        }

        public void Skip(Wire wire)
        {
            switch (wire)
            {
                case Wire.Varint:
                    Varint();
                    break;
                case Wire.Fixed64:
                    Advance(8);
                    break;
                case Wire.Fixed32:
                    Advance(4);
                    break;
                case Wire.Delimited:
                    Delimited();
                    break;
                default:
                    throw Malformed($"unsupported wire type {(int)wire}");
            }
        }

        private void Advance(int bytes)
        {
            if (end - _position < bytes)
                throw Malformed("truncated fixed-width field");
            _position += bytes;
        }

        private static InvalidDataException Malformed(string what) =>
            new($"a DatasetBatch from the service is malformed: {what}");
    }
}
