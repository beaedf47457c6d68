using System.Globalization;

namespace EmbedCache.Trainer;

/// <summary>
/// Strict, small parsing of the trainer's command line: <c>--name value</c> or <c>--name=value</c>,
/// flags without values; anything unknown is a <see cref="UsageException"/> (one line, exit code 2).
/// </summary>
public static class CommandLine
{
    public const string Usage = """
        usage: EmbedCache.Trainer train --dataset NAME --encoder NAME [options]
               EmbedCache.Trainer check [--service URL]

        train options:
          --service URL      EmbedCache gRPC address (default $EMBEDCACHE_SERVICE or http://127.0.0.1:50051)
          --api-key KEY      bearer key for the service (default $EMBEDCACHE_API_KEY)
          --epochs N         epochs (default 10)
          --batch-size N     items per batch (default 64)
          --head mlp|skip    MLP head (standardise, Linear-ReLU-Linear) or Quaterion's skip-connection head (default mlp)
          --hidden N         MLP hidden width (default max(64, encoder dim))
          --out-dim N        MLP output dim (default min(128, encoder dim)); the skip head keeps the encoder dim
          --loss triplet|contrastive   default: triplet for group labels, contrastive for pairs
          --margin X         loss margin on cosine distance (default 0.5)
          --lr X             Adam learning rate (default 0.001)
          --seed N           head init and shuffle seed (default 42)
          --k N              recall@k cut-off (default 5)
          --train-split S    (default train)      --val-split S   (default val)
          --out DIR          outputs (default ./trainer-out/<dataset>-<encoder>)
          --no-cache         encode every epoch locally with the same built-in encoder (no service), for comparison
          --data-root DIR    datasets for --no-cache (default $EMBEDCACHE_DATA_ROOT or deploy/datasets above the working dir)
          --compare FILE     metrics.json of a --no-cache run (or of a cached run) to compare epoch times with
        """;

    private static readonly HashSet<string> Flags = new(StringComparer.Ordinal) { "help" };

    private static readonly HashSet<string> TrainOptionNames = new(StringComparer.Ordinal)
    {
        "dataset", "encoder", "service", "api-key", "epochs", "batch-size", "head", "hidden", "out-dim", "loss", "margin",
        "lr", "seed", "k", "train-split", "val-split", "out", "compare", "data-root",
    };

    /// <summary>Parses <c>--name value</c> pairs against the allowed names.</summary>
    public static (Dictionary<string, string> Options, HashSet<string> Flags) Parse(IReadOnlyList<string> args, IReadOnlySet<string> allowed, IReadOnlySet<string>? flags = null)
    {
        flags ??= Flags;
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        var set = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new UsageException($"unexpected argument '{a}'");
            var eq = a.IndexOf('=', StringComparison.Ordinal);
            var name = eq > 0 ? a[2..eq] : a[2..];
            if (flags.Contains(name))
            {
                if (eq > 0)
                    throw new UsageException($"--{name} takes no value");
                set.Add(name);
                continue;
            }

            if (!allowed.Contains(name))
                throw new UsageException($"unknown option --{name}");
            string value;
            if (eq > 0)
                value = a[(eq + 1)..];
            else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
                value = args[++i];
            else
                throw new UsageException($"--{name} needs a value");
            if (!options.TryAdd(name, value))
                throw new UsageException($"--{name} given twice");
        }

        return (options, set);
    }

    public static TrainOptions ParseTrain(IReadOnlyList<string> args, Func<string, string?> environment)
    {
        var (o, flags) = Parse(args, TrainOptionNames, TrainFlags);
        var noCache = flags.Contains("no-cache");
        if (!noCache && o.ContainsKey("data-root"))
            throw new UsageException("--data-root is for --no-cache runs (the service reads its own data root)");
        var service = o.GetValueOrDefault("service") ?? environment("EMBEDCACHE_SERVICE") ?? "http://127.0.0.1:50051";
        if (!Uri.TryCreate(service, UriKind.Absolute, out var serviceUri) || serviceUri.Scheme is not ("http" or "https"))
            throw new UsageException($"--service must be an http:// or https:// URL (was '{service}')");

        return new TrainOptions
        {
            Dataset = o.GetValueOrDefault("dataset") ?? throw new UsageException("--dataset is required"),
            Encoder = o.GetValueOrDefault("encoder") ?? throw new UsageException("--encoder is required"),
            Service = serviceUri,
            ApiKey = o.GetValueOrDefault("api-key") ?? environment("EMBEDCACHE_API_KEY"),
            Epochs = Int(o, "epochs", 10, min: 1),
            BatchSize = Int(o, "batch-size", 64, min: 2),
            Head = o.GetValueOrDefault("head") switch
            {
                null or "mlp" => HeadKind.Mlp,
                "skip" => HeadKind.Skip,
                var v => throw new UsageException($"--head must be mlp or skip (was '{v}')"),
            },
            HiddenDim = o.ContainsKey("hidden") ? Int(o, "hidden", 0, min: 1) : null,
            OutputDim = o.ContainsKey("out-dim") ? Int(o, "out-dim", 0, min: 1) : null,
            Loss = o.GetValueOrDefault("loss") switch
            {
                null => null,
                "triplet" => LossKind.Triplet,
                "contrastive" => LossKind.Contrastive,
                var v => throw new UsageException($"--loss must be triplet or contrastive (was '{v}')"),
            },
            Margin = Double(o, "margin", 0.5, min: 0),
            LearningRate = Double(o, "lr", 1e-3, min: double.Epsilon),
            Seed = o.TryGetValue("seed", out var seed)
                ? ulong.TryParse(seed, NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : throw new UsageException($"--seed must be a non-negative integer (was '{seed}')")
                : 42,
            K = Int(o, "k", 5, min: 1),
            TrainSplit = o.GetValueOrDefault("train-split") ?? "train",
            ValSplit = o.GetValueOrDefault("val-split") ?? "val",
            Out = o.GetValueOrDefault("out"),
            NoCache = noCache,
            DataRoot = noCache ? o.GetValueOrDefault("data-root") ?? environment("EMBEDCACHE_DATA_ROOT") ?? DefaultDataRoot(Directory.GetCurrentDirectory()) : null,
            Compare = o.GetValueOrDefault("compare") is { } c
                ? File.Exists(c) ? c : throw new UsageException($"--compare file '{c}' does not exist")
                : null,
        };
    }

    private static readonly HashSet<string> TrainFlags = new(StringComparer.Ordinal) { "no-cache" };

    /// <summary>The repository's <c>deploy/datasets</c>, found from <paramref name="start"/> upwards; else <c>./datasets</c>.</summary>
    public static string DefaultDataRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "deploy", "datasets");
            if (Directory.Exists(candidate))
                return candidate;
        }

        return Path.Combine(start, "datasets");
    }

    private static int Int(Dictionary<string, string> o, string name, int fallback, int min)
    {
        if (!o.TryGetValue(name, out var v))
            return fallback;
        return int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min
            ? n : throw new UsageException($"--{name} must be an integer ≥ {min} (was '{v}')");
    }

    private static double Double(Dictionary<string, string> o, string name, double fallback, double min)
    {
        if (!o.TryGetValue(name, out var v))
            return fallback;
        return double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x) && x >= min
            ? x : throw new UsageException($"--{name} must be a number ≥ {min} (was '{v}')");
    }
}

/// <summary>Bad command-line usage: one line on stderr, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
