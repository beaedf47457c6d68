using System.IO.Hashing;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace EmbedCache.Engine.Encoders;

/// <summary>Turns text into token ids (without special tokens); thread-safe.</summary>
internal interface ITextTokenizer
{
    /// <summary>Canonical description for the fingerprint (kind and settings, not the vocabulary content).</summary>
    string Description { get; }

    /// <summary>Content hash of the vocabulary file, or empty.</summary>
    ReadOnlyMemory<byte> VocabularyHash { get; }

    long PadId { get; }

    long ClsId { get; }

    long SepId { get; }

    /// <summary>Appends the word-piece ids of <paramref name="text"/> to <paramref name="ids"/>.</summary>
    void AddIds(string text, List<long> ids);
}

/// <summary>The tokenizer an encoder's options ask for.</summary>
internal static class TextTokenizer
{
    /// <summary>WordPiece from <c>VocabPath</c>, or the hashing tokenizer; a missing or bad vocabulary names the encoder and file.</summary>
    public static ITextTokenizer Create(string encoderName, ResolvedEncoderOptions o)
    {
        if (o.Tokenizer != "wordpiece")
            return new HashingTokenizer(o.VocabBuckets);
        if (!File.Exists(o.VocabPath))
            throw new EncoderLoadException($"encoder '{encoderName}': vocabulary file '{o.VocabPath}' does not exist");
        try
        {
            return WordPieceTextTokenizer.Load(o.VocabPath, o.LowerCase, o.StripAccents);
        }
        catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException or FormatException)
        {
            throw new EncoderLoadException($"encoder '{encoderName}': cannot read WordPiece vocabulary '{o.VocabPath}': {e.Message}", e);
        }
    }
}

/// <summary>
/// Needs no vocabulary: lower-cased runs of letters and digits are one token each, every other
/// non-space character is a token of its own, and each token's UTF-8 bytes are hashed (XxHash3,
/// stable across machines) into <c>buckets - 4</c> ids after the specials PAD=0, UNK=1, CLS=2, SEP=3.
/// </summary>
internal sealed class HashingTokenizer : ITextTokenizer
{
    private const int Specials = 4;
    private const int MaxWordChars = 128;
    private readonly ulong _buckets;

    public HashingTokenizer(int buckets)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, Specials + 1);
        _buckets = (ulong)(buckets - Specials);
        Description = $"hashing-xxh3(buckets={buckets},specials=pad0/unk1/cls2/sep3,lower,word=letter|digit)";
    }

    public string Description { get; }

    public ReadOnlyMemory<byte> VocabularyHash => ReadOnlyMemory<byte>.Empty;

    public long PadId => 0;

    public long ClsId => 2;

    public long SepId => 3;

    public void AddIds(string text, List<long> ids)
    {
        Span<char> word = stackalloc char[MaxWordChars + 2];
        Span<byte> utf8 = stackalloc byte[(MaxWordChars + 2) * 3];
        var length = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.IsLetterOrDigit(rune))
            {
                if (length > MaxWordChars)
                {
                    ids.Add(Hash(word[..length], utf8));
                    length = 0;
                }

                length += Rune.ToLowerInvariant(rune).EncodeToUtf16(word[length..]);
                continue;
            }

            if (length > 0)
            {
                ids.Add(Hash(word[..length], utf8));
                length = 0;
            }

            if (!Rune.IsWhiteSpace(rune) && !Rune.IsControl(rune))
            {
                var n = rune.EncodeToUtf16(word);
                ids.Add(Hash(word[..n], utf8));
            }
        }

        if (length > 0)
            ids.Add(Hash(word[..length], utf8));
    }

    private long Hash(ReadOnlySpan<char> piece, Span<byte> scratch)
    {
        var n = Encoding.UTF8.GetBytes(piece, scratch);
        return (long)(XxHash3.HashToUInt64(scratch[..n]) % _buckets) + Specials;
    }
}

/// <summary>BERT WordPiece from a vocab.txt (Microsoft.ML.Tokenizers).</summary>
internal sealed partial class WordPieceTextTokenizer : ITextTokenizer
{
    private readonly BertTokenizer _tokenizer;
    private readonly bool _stripAccents;

    private WordPieceTextTokenizer(BertTokenizer tokenizer, byte[] vocabularyHash, bool lowerCase, bool stripAccents)
    {
        _tokenizer = tokenizer;
        _stripAccents = stripAccents;
        VocabularyHash = vocabularyHash;
        Description = $"wordpiece(lower={lowerCase},{(stripAccents ? "strip-accents," : "")}basic=bert-v2,cjk=split,cls={tokenizer.ClassificationTokenId},sep={tokenizer.SeparatorTokenId},pad={tokenizer.PaddingTokenId})";
    }

    /// <summary>
    /// BERT's tokenization: basic (clean control characters, split CJK ideographs and punctuation, optional
    /// lower-casing and accent stripping) then greedy longest-match WordPiece, with BertTokenizer doing the
    /// WordPiece. Where its basic steps differ from BERT's, ours run first or replace them: cleaning and
    /// accent stripping (<see cref="BertNormalization"/>), and the split into words, which must keep ASCII
    /// symbols such as <c>$ + = ^</c> as punctuation tokens (BertTokenizer's own split drops them).
    /// </summary>
    public static WordPieceTextTokenizer Load(string vocabPath, bool lowerCase, bool stripAccents)
    {
        var bytes = File.ReadAllBytes(vocabPath);
        using var stream = new MemoryStream(bytes, writable: false);
        var tokenizer = BertTokenizer.Create(stream, new BertOptions
        {
            PreTokenizer = new RegexPreTokenizer(BertWords(), null),
            LowerCaseBeforeTokenization = lowerCase,
            IndividuallyTokenizeCjk = true,
            ApplyBasicTokenization = true,
        });
        return new WordPieceTextTokenizer(tokenizer, XxHash128.Hash(bytes), lowerCase, stripAccents);
    }

    public string Description { get; }

    public ReadOnlyMemory<byte> VocabularyHash { get; }

    /// <summary>BERT's words: each punctuation character (ASCII 33–47, 58–64, 91–96, 123–126, or Unicode P*) alone, else runs of non-space.</summary>
    [GeneratedRegex(@"[!-/:-@\[-`{-~\p{P}]|[^\s!-/:-@\[-`{-~\p{P}]+", RegexOptions.CultureInvariant)]
    private static partial Regex BertWords();

    public long PadId => _tokenizer.PaddingTokenId;

    public long ClsId => _tokenizer.ClassificationTokenId;

    public long SepId => _tokenizer.SeparatorTokenId;

    public void AddIds(string text, List<long> ids)
    {
        text = BertNormalization.Clean(text);
        if (_stripAccents)
            text = BertNormalization.StripAccents(text);
        foreach (var id in _tokenizer.EncodeToIds(text, addSpecialTokens: false))
            ids.Add(id);
    }
}
