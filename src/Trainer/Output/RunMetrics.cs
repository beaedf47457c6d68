using System.Text.Json;
using System.Text.Json.Serialization;

namespace EmbedCache.Trainer;

/// <summary>metrics.json: what a run was, and what every epoch measured.</summary>
public sealed class RunMetrics
{
    public const string FileName = "metrics.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public required string Dataset { get; init; }

    public required string Encoder { get; init; }

    /// <summary>"cached" (served by the service) or "local" (--no-cache).</summary>
    public required string Source { get; init; }

    /// <summary>The encoder's fingerprint (its weights and settings), so a comparison is of the same encoder.</summary>
    public string? Fingerprint { get; init; }

    public required RunConfig Config { get; init; }

    public required FillMetrics Fill { get; init; }

    public int EvalItems { get; init; }

    /// <summary>Retrieval on the raw (untrained) encoder embeddings.</summary>
    public required ScoreMetrics Baseline { get; init; }

    /// <summary>Retrieval through the freshly initialised head, before any step.</summary>
    public required ScoreMetrics UntrainedHead { get; init; }

    public List<EpochMetrics> Epochs { get; init; } = [];

    public SpeedupMetrics Speedups { get; set; } = new();

    /// <summary>Mean seconds of the epochs that read a warm cache (those not marked fill), or of every epoch for a local run.</summary>
    public double? SteadyEpochSeconds()
    {
        var steady = Epochs.Where(e => !e.Fill).ToList();
        return steady.Count == 0 ? null : steady.Average(e => e.Seconds);
    }

    public void Write(string path) => File.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    public static RunMetrics Read(string path) =>
        JsonSerializer.Deserialize<RunMetrics>(File.ReadAllText(path), Json)
        ?? throw new InvalidDataException($"{path} is empty");
}

public sealed record RunConfig(
    HeadKind Head, LossKind Loss, int Epochs, int BatchSize, double LearningRate, double Margin, ulong Seed, int K,
    int InputDim, int HiddenDim, int OutputDim, string? Service);

/// <summary>What making the splits readable cost: for the cache a prewarm, for a local run loading the encoder.</summary>
public sealed record FillMetrics(double Seconds, long Encoded, long AlreadyCached, string? Note = null);

public sealed record ScoreMetrics(double PrecisionAt1, double RecallAtK)
{
    public static ScoreMetrics From(RetrievalScores s) => new(s.PrecisionAt1, s.RecallAtK);
}

/// <param name="Fill">Whether something was encoded for this cached epoch (the first epoch's time then includes the prewarm).</param>
/// <param name="HitRate">Rows served from the cache ÷ rows read (a local run computes every row: 0).</param>
/// <param name="DataDigest">XxHash64 of the epoch's indices, labels and embedding bits, in the order received.</param>
public sealed record EpochMetrics(
    int Epoch, bool Fill, double Loss, double PrecisionAt1, double RecallAtK, double Seconds, double EvalSeconds,
    double HitRate, long Items, int Batches, string? DataDigest = null);

public sealed record SpeedupMetrics
{
    /// <summary>Mean --no-cache epoch seconds ÷ mean cached epoch seconds.</summary>
    public double? CachedOverNoCache { get; init; }

    /// <summary>The metrics file the --no-cache comparison came from.</summary>
    public string? ComparedWith { get; init; }
}
