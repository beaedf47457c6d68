using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Encoders;

/// <summary>Text items turned into token ids with [CLS] … [SEP], validated, ready to be batched.</summary>
internal sealed class TokenizedText
{
    private readonly long[][] _ids;
    private readonly long _padId;
    private readonly int _padTo;

    private TokenizedText(long[][] ids, long padId, int padTo)
    {
        _ids = ids;
        _padId = padId;
        _padTo = padTo;
    }

    /// <summary>
    /// Tokenizes every item. Empty (or all-space) text is rejected; text over <paramref name="maxLength"/>
    /// tokens is truncated (keeping [SEP] last) or rejected.
    /// </summary>
    public static TokenizedText Create(ITextTokenizer tokenizer, FeatureBatch features, string encoderName,
        int maxLength, bool truncate, bool padToMaxLength)
    {
        if (features is not TextFeatureBatch batch)
            throw new InvalidFeaturesException(InvalidFeaturesException.WholeBatch,
                $"encoder '{encoderName}' takes text features, not float tensors");
        var ids = new long[batch.Count][];
        var pieces = new List<long>(maxLength);
        for (var i = 0; i < ids.Length; i++)
        {
            var text = batch.Texts[i];
            if (string.IsNullOrWhiteSpace(text))
                throw new InvalidFeaturesException(i, "text is empty");
            pieces.Clear();
            tokenizer.AddIds(text, pieces);
            if (pieces.Count == 0)
                throw new InvalidFeaturesException(i, "text has no tokens (only control characters)");
            var total = pieces.Count + 2;
            if (total > maxLength && !truncate)
                throw new InvalidFeaturesException(i,
                    $"text is {total} tokens long, more than MaxLength {maxLength} (TooLong is 'reject')");
            var kept = Math.Min(pieces.Count, maxLength - 2);
            var row = new long[kept + 2];
            row[0] = tokenizer.ClsId;
            CollectionsMarshal.AsSpan(pieces)[..kept].CopyTo(row.AsSpan(1));
            row[^1] = tokenizer.SepId;
            ids[i] = row;
        }

        return new TokenizedText(ids, tokenizer.PadId, padToMaxLength ? maxLength : 0);
    }

    /// <summary>The ids of item <paramref name="index"/> (tests and diagnostics).</summary>
    public ReadOnlySpan<long> Ids(int index) => _ids[index];

    /// <summary>Tokens per row of items [start, start + count): the longest of them, or MaxLength when padding to it.</summary>
    public int PaddedLength(int start, int count)
    {
        var length = _padTo;
        if (length == 0)
        {
            for (var i = start; i < start + count; i++)
                length = Math.Max(length, _ids[i].Length);
        }

        return length;
    }

    /// <summary>
    /// Writes input_ids and attention_mask of items [start, start + count), row-major [count, length] with
    /// <paramref name="length"/> from <see cref="PaddedLength"/>.
    /// </summary>
    public void Fill(int start, int count, int length, Span<long> ids, Span<long> mask)
    {
        ids[..(count * length)].Fill(_padId);
        mask[..(count * length)].Clear();
        for (var i = 0; i < count; i++)
        {
            var row = _ids[start + i];
            row.CopyTo(ids.Slice(i * length, row.Length));
            mask.Slice(i * length, row.Length).Fill(1);
        }
    }

    /// <summary>input_ids and attention_mask, both int64 [count, L], for items [start, start + count).</summary>
    public (Tensor Ids, Tensor Mask) ToTensors(int start, int count)
    {
        var length = PaddedLength(start, count);
        var ids = empty([count, length], ScalarType.Int64);
        var mask = empty([count, length], ScalarType.Int64);
        Fill(start, count, length, MemoryMarshal.Cast<byte, long>(ids.bytes), MemoryMarshal.Cast<byte, long>(mask.bytes));
        return (ids, mask);
    }
}
