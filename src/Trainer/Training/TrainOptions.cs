namespace EmbedCache.Trainer;

/// <summary>One training run, as the command line describes it.</summary>
public sealed record TrainOptions
{
    public required string Dataset { get; init; }

    public required string Encoder { get; init; }

    public Uri Service { get; init; } = new("http://127.0.0.1:50051");

    public string? ApiKey { get; init; }

    public int Epochs { get; init; } = 10;

    public int BatchSize { get; init; } = 64;

    public HeadKind Head { get; init; } = HeadKind.Mlp;

    /// <summary>Null: chosen by the labels the dataset has (groups → triplet, pairs → contrastive).</summary>
    public LossKind? Loss { get; init; }

    public double LearningRate { get; init; } = 1e-3;

    public double Margin { get; init; } = 0.5;

    public ulong Seed { get; init; } = 42;

    public int K { get; init; } = 5;

    public int? HiddenDim { get; init; }

    public int? OutputDim { get; init; }

    public bool NoCache { get; init; }

    /// <summary>Where datasets live for <c>--no-cache</c> (the service's data root).</summary>
    public string? DataRoot { get; init; }

    /// <summary>A metrics.json of the other kind of run (cached vs --no-cache) to compare epoch times with.</summary>
    public string? Compare { get; init; }

    public string TrainSplit { get; init; } = "train";

    public string ValSplit { get; init; } = "val";

    /// <summary>Output directory; default ./trainer-out/&lt;dataset&gt;-&lt;encoder&gt;[-nocache].</summary>
    public string? Out { get; init; }

    public string OutDirectory => Out ?? Path.Combine("trainer-out", $"{Sanitize(Dataset)}-{Sanitize(Encoder)}{(NoCache ? "-nocache" : "")}");

    private static string Sanitize(string name) =>
        string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
}
