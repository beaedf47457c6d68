namespace EmbedCache.Bench.Compare;

/// <summary>The sizes and times of a <c>compare</c> run, full or <c>--quick</c>.</summary>
/// <param name="Warm">Seconds each measured path runs before its measurement starts (JIT tiering, pools, HTTP/2 windows).</param>
/// <param name="Seconds">Seconds each path is measured for, after its warm-up.</param>
/// <param name="PrewarmSentences">Train split of the prewarm comparison's text dataset (its val split, a third of that, warms up).</param>
internal sealed record Settings(bool Quick, int Items, int BigItems, double Warm, double Seconds, int TrainEpochs, int Sentences, int PrewarmSentences)
{
    public static Settings For(bool quick) => quick
        ? new Settings(true, 20_000, 100_000, 1.0, 1.5, 2, 120, 480)
        : new Settings(false, 100_000, 1_000_000, 3.0, 5.0, 3, 300, 3_600);

    /// <summary>Warm-up seconds of each path the remote-tier scenario measures interleaved (six of them, so shorter than <see cref="Warm"/>).</summary>
    public double RemoteWarm => Quick ? 0.5 : 1.5;

    /// <summary>Measured seconds of each of those paths.</summary>
    public double RemoteSeconds => Quick ? 1.5 : 3.0;
}
