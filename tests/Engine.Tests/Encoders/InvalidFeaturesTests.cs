using System.Text;
using EmbedCache.Engine.Encoders;
using static EmbedCache.Engine.Tests.Encoders.TestEncoders;

namespace EmbedCache.Engine.Tests.Encoders;

/// <summary>Bad features fail that request with the item named; the encoder keeps serving.</summary>
public sealed class InvalidFeaturesTests
{
    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "+Inf")]
    [InlineData(float.NegativeInfinity, "-Inf")]
    public void NonFiniteValue_IsRejected_NamingTheItem_AndNothingIsWritten(float bad, string shown)
    {
        using var encoder = Create(SmallMlp());
        var values = Values(5 * 8, 1);
        values[3 * 8 + 6] = bad;
        var output = new float[5 * 8];

        var e = Assert.Throws<InvalidFeaturesException>(() => encoder.Encode(new TensorFeatureBatch(values, [8]), output));

        Assert.Equal(3, e.ItemIndex);
        Assert.Equal($"item 3: value 6 is {shown}; features must be finite", e.Message);
        Assert.All(output, v => Assert.Equal(0f, v));
        AssertStillServes(encoder);
    }

    [Fact]
    public void WrongItemShape_IsRejected_NamingBothShapes()
    {
        using var encoder = Create(SmallConvNet());

        var e = Assert.Throws<InvalidFeaturesException>(() =>
            Encode(encoder, new TensorFeatureBatch(Values(2 * 3 * 4 * 4, 1), [3, 4, 4])));

        Assert.Equal(InvalidFeaturesException.WholeBatch, e.ItemIndex);
        Assert.Contains("item shape [3, 4, 4] does not match encoder 'test' input shape [3, 8, 8]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ItemOfWrongLength_IsRejected_NamingTheItem()
    {
        var good = new byte[8 * sizeof(float)];
        var shortItem = new byte[7 * sizeof(float)];

        var e = Assert.Throws<InvalidFeaturesException>(() =>
            TensorFeatureBatch.FromItems([good, good, shortItem, good], [8]));

        Assert.Equal(2, e.ItemIndex);
        Assert.Equal("item 2: has 28 bytes, expected 32 (float32 × [8])", e.Message);
    }

    [Fact]
    public void DataEndingMidItem_IsRejected_NamingTheIncompleteItem()
    {
        var e = Assert.Throws<InvalidFeaturesException>(() => new TensorFeatureBatch(new float[8 * 2 + 3], [8]));

        Assert.Equal(2, e.ItemIndex);
        Assert.Contains("has 3 of 8 values", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BytesThatAreNotWholeFloats_AreRejected()
    {
        var e = Assert.Throws<InvalidFeaturesException>(() => TensorFeatureBatch.FromLittleEndianBytes(new byte[33], [8]));

        Assert.Contains("33 bytes is not a whole number of float32 values", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \t\n")]
    public void EmptyText_IsRejected_NamingTheItem(string empty)
    {
        using var encoder = Create(SmallMiniLm());

        var e = Assert.Throws<InvalidFeaturesException>(() => Encode(encoder, "fine", empty));

        Assert.Equal(1, e.ItemIndex);
        Assert.Equal("item 1: text is empty", e.Message);
        AssertStillServes(encoder);
    }

    [Fact]
    public void TooLongText_WithReject_IsRejected_NamingTheItemAndTheLimit()
    {
        using var encoder = Create(SmallMiniLm(o => { o.MaxLength = 6; o.TooLong = "reject"; }));

        Encode(encoder, "w1 w2 w3 w4");
        var e = Assert.Throws<InvalidFeaturesException>(() => Encode(encoder, "ok", "w1 w2 w3 w4 w5"));

        Assert.Equal(1, e.ItemIndex);
        Assert.Equal("item 1: text is 7 tokens long, more than MaxLength 6 (TooLong is 'reject')", e.Message);
        AssertStillServes(encoder);
    }

    [Fact]
    public void UndecodableUtf8_IsRejected_NamingTheItemAndOffset()
    {
        byte[] good = Encoding.UTF8.GetBytes("fine");
        byte[] bad = [0x61, 0x62, 0xC3, 0x28];

        var e = Assert.Throws<InvalidFeaturesException>(() => TextFeatureBatch.FromUtf8([good, good, bad]));

        Assert.Equal(2, e.ItemIndex);
        Assert.StartsWith("item 2: text is not valid UTF-8 (bad byte at offset 2)", e.Message, StringComparison.Ordinal);
        Assert.Equal(["fine", "héllo"], TextFeatureBatch.FromUtf8([good, Encoding.UTF8.GetBytes("héllo")]).Texts);
    }

    [Fact]
    public void FeaturesOfTheWrongKind_AreRejected()
    {
        using var text = Create(SmallMiniLm());
        using var vectors = Create(SmallMlp());

        var e1 = Assert.Throws<InvalidFeaturesException>(() => Encode(vectors, "text for a vector encoder"));
        var e2 = Assert.Throws<InvalidFeaturesException>(() => Encode(text, new TensorFeatureBatch(new float[8], [8])));

        Assert.Equal("batch: encoder 'test' takes FloatVector features, not text", e1.Message);
        Assert.Equal("batch: encoder 'test' takes text features, not float tensors", e2.Message);
    }

    [Fact]
    public void OutputSpanTooShort_IsAnArgumentError()
    {
        using var encoder = Create(SmallMlp());

        var e = Assert.Throws<ArgumentException>(() => encoder.Encode(new TensorFeatureBatch(new float[16], [8]), new float[15]));

        Assert.Contains("2 items × dim 8 = 16 needed", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CancelledToken_StopsBeforeTheForward()
    {
        using var encoder = Create(SmallMlp());
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Assert.Throws<OperationCanceledException>(() =>
            encoder.Encode(new TensorFeatureBatch(new float[16], [8]), new float[16], cts.Token));
    }

    [Fact]
    public void FeatureBytes_AreUtf8ForTextAndLittleEndianFloatsForTensors()
    {
        var text = new TextFeatureBatch(["añb", "x"]);
        var tensors = new TensorFeatureBatch(new float[] { 1, 2, 1.5f, -2 }, [2]);

        Assert.Equal(Encoding.UTF8.GetBytes("añb"), FeatureBytes.ToArray(text, 0));
        Assert.Equal(new byte[] { 0, 0, 0xC0, 0x3F, 0, 0, 0, 0xC0 }, FeatureBytes.ToArray(tensors, 1));
        Assert.Equal(FeatureBytes.ContentHash(tensors, 1),
            FeatureBytes.ContentHash(TensorFeatureBatch.FromLittleEndianBytes(new byte[] { 0, 0, 0xC0, 0x3F, 0, 0, 0, 0xC0 }, [2]), 0));
        Assert.NotEqual(FeatureBytes.ContentHash(tensors, 0), FeatureBytes.ContentHash(tensors, 1));
    }

    private static void AssertStillServes(IEncoder encoder)
    {
        var output = encoder.InputKind == Embeddings.InputKind.Text
            ? Encode(encoder, "still serving")
            : Encode(encoder, new TensorFeatureBatch(Values((int)encoder.InputShape[0], 2), encoder.InputShape));
        Assert.All(output, v => Assert.True(float.IsFinite(v)));
    }
}
