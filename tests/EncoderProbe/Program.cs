using System.Globalization;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using EmbedCache.Engine.Encoders;

// determinism: encode fixed inputs with every default encoder; print fingerprint and a hash of the output bytes.
// leak <batches>: run that many small batches through the default mlp; print native RSS before and after.
return args switch
{
    ["determinism"] => Determinism(),
    ["leak", var batches] => Leak(int.Parse(batches, CultureInfo.InvariantCulture)),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: EmbedCache.EncoderProbe determinism | leak <batches>");
    return 2;
}

static int Determinism()
{
    using var registry = EncoderRegistry.Create(EncoderRegistry.Defaults());
    foreach (var encoder in registry.All)
    {
        var batch = FixedInputs(encoder);
        var output = new float[batch.Count * encoder.Dim];
        encoder.Encode(batch, output);
        var hash = XxHash128.HashToUInt128(MemoryMarshal.AsBytes(output.AsSpan()));
        Console.WriteLine(FormattableString.Invariant(
            $"encoder {encoder.Name} fingerprint {encoder.Fingerprint} items {batch.Count} dim {encoder.Dim} output {hash:x32} first {BitConverter.SingleToUInt32Bits(output[0]):x8}"));
    }

    return 0;
}

static int Leak(int batches)
{
    var options = EncoderRegistry.Defaults()["random-mlp"].Clone();
    options.BatchSize = 16;
    using var encoder = EncoderRegistry.CreateEncoder("random-mlp", options);
    var batch = new TensorFeatureBatch(Values(16 * (int)encoder.InputShape[0], 7), encoder.InputShape);
    var output = new float[16 * encoder.Dim];
    for (var i = 0; i < 1000; i++)
        encoder.Encode(batch, output);
    var before = SettledRssKiB();
    for (var i = 0; i < batches; i++)
        encoder.Encode(batch, output);
    var after = SettledRssKiB();
    Console.WriteLine(FormattableString.Invariant($"batches {batches} rss-before-kib {before} rss-after-kib {after}"));
    return 0;
}

// Resident memory outside the managed heap: RSS minus what the GC has committed. The GC's gen0 budget follows
// the CPU's cache size, so its committed memory differs between machines and is not what this probe is after.
static long SettledRssKiB()
{
    GC.Collect();
    GC.WaitForPendingFinalizers();
    GC.Collect();
    var managedKiB = GC.GetGCMemoryInfo().TotalCommittedBytes / 1024;
    foreach (var line in File.ReadLines("/proc/self/status"))
    {
        if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) - managedKiB;
    }

    throw new InvalidOperationException("no VmRSS in /proc/self/status");
}

static FeatureBatch FixedInputs(IEncoder encoder)
{
    if (encoder.InputKind == EmbedCache.Engine.Embeddings.InputKind.Text)
    {
        return new TextFeatureBatch([
            "A frozen encoder gives the same embedding every epoch.",
            "Caching it once saves every later epoch the forward pass.",
            "naïve café, 42 — ünïcödé!",
            string.Join(' ', Enumerable.Range(0, 200).Select(i => $"word{i}")),
        ]);
    }

    var itemLength = 1;
    foreach (var d in encoder.InputShape)
        itemLength *= (int)d;
    return new TensorFeatureBatch(Values(4 * itemLength, 11), encoder.InputShape);
}

// SplitMix64 → [-1, 1): the same values in every process and every .NET version.
static float[] Values(int count, ulong seed)
{
    var values = new float[count];
    var state = seed;
    for (var i = 0; i < count; i++)
    {
        state += 0x9E3779B97F4A7C15UL;
        var z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        values[i] = (z >> 40) * (2f / (1 << 24)) - 1;
    }

    return values;
}
