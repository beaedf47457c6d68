using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using EmbedCache.CacheClient;

namespace EmbedCache.Trainer;

/// <summary>
/// The trainer's command line (System.CommandLine): <c>train</c> and <c>check</c>, with <c>--help</c>,
/// shell completion (<c>dotnet-suggest</c>) and errors that name the bad option. Bad usage exits 2.
/// </summary>
public static class CommandLine
{
    public const string DefaultService = "http://127.0.0.1:50051";

    /// <summary>The trainer's commands; the actions get the parsed options.</summary>
    public static RootCommand Create(
        Func<string, string?> environment,
        Func<TrainOptions, CancellationToken, Task<int>> train,
        Func<Uri, string?, CancellationToken, Task<int>> check)
    {
        var trainCommand = new TrainCommand(environment);
        trainCommand.SetAction((result, ct) => train(trainCommand.Bind(result), ct));

        var service = ServiceOption(environment);
        var apiKey = ApiKeyOption();
        var checkCommand = new Command("check", "Ask the service whether it is serving (exit 0 if it is, 1 if not).") { service, apiKey };
        checkCommand.SetAction((result, ct) => check(result.GetRequiredValue(service), result.GetValue(apiKey) ?? environment("EMBEDCACHE_API_KEY"), ct));

        var root = new RootCommand("Trains a similarity head on embeddings served by EmbedCache.") { trainCommand, checkCommand };
        root.SetAction(result => new HelpAction().Invoke(result));
        return root;
    }

    /// <summary>
    /// Parses and runs: bad usage prints the errors and help on <paramref name="error"/> and returns 2;
    /// otherwise the command's exit code. Exceptions from the actions propagate to the caller.
    /// </summary>
    public static async Task<int> InvokeAsync(RootCommand root, IReadOnlyList<string> args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var result = root.Parse(args);
        if (result.Action is ParseErrorAction)
        {
            result.Invoke(new InvocationConfiguration { Output = error, Error = error });
            return 2;
        }

        return await result.InvokeAsync(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false }, cancellationToken);
    }

    /// <summary>The options of <c>train</c> with these arguments, or a <see cref="UsageException"/> naming what is wrong.</summary>
    public static TrainOptions ParseTrain(IReadOnlyList<string> args, Func<string, string?> environment)
    {
        var command = new TrainCommand(environment);
        var result = command.Parse(args);
        if (result.Errors.Count > 0)
            throw new UsageException(string.Join("; ", result.Errors.Select(e => e.Message.Trim())));
        return command.Bind(result);
    }

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

    internal static Option<Uri> ServiceOption(Func<string, string?> environment) => new("--service")
    {
        Description = "EmbedCache gRPC address, http(s)://host:port or unix:///path/to.sock ($EMBEDCACHE_SERVICE)",
        HelpName = "url",
        DefaultValueFactory = r => ParseService(environment("EMBEDCACHE_SERVICE") ?? DefaultService, r),
        CustomParser = r => ParseService(r.Tokens[0].Value, r),
    };

    internal static Option<string?> ApiKeyOption() => new("--api-key")
    {
        Description = "bearer key for the service (default $EMBEDCACHE_API_KEY)",
        HelpName = "key",
    };

    private static Uri ParseService(string value, ArgumentResult result) =>
        EmbedCacheClientOptions.TryParseAddress(value, out var uri)
            ? uri : Error<Uri>(result, $"--service must be an http:// or https:// URL or unix:///path/to.sock (was '{value}')");

    /// <summary><c>train</c>: every option with its default, checked as it is parsed.</summary>
    private sealed class TrainCommand : Command
    {
        private readonly Func<string, string?> _environment;
        private readonly Option<string> _dataset = new("--dataset") { Description = "dataset name, as the service knows it", Required = true, HelpName = "name" };
        private readonly Option<string> _encoder = new("--encoder") { Description = "encoder name, as the service knows it", Required = true, HelpName = "name" };
        private readonly Option<Uri> _service;
        private readonly Option<string?> _apiKey = ApiKeyOption();
        private readonly Option<int> _epochs = Int("--epochs", "epochs", 10, min: 1);
        private readonly Option<int> _batchSize = Int("--batch-size", "items per batch", 64, min: 2);
        private readonly Option<HeadKind?> _head = Choice<HeadKind?>("--head", "MLP head (standardise, Linear-ReLU-Linear) or Quaterion's skip-connection head (default mlp)",
            new Dictionary<string, HeadKind?> { ["mlp"] = HeadKind.Mlp, ["skip"] = HeadKind.Skip });
        private readonly Option<int?> _hidden = OptionalInt("--hidden", "MLP hidden width (default max(64, encoder dim))");
        private readonly Option<int?> _outDim = OptionalInt("--out-dim", "MLP output dim (default min(128, encoder dim)); the skip head keeps the encoder dim");
        private readonly Option<LossKind?> _loss = Choice<LossKind?>("--loss", "default: triplet for group labels, contrastive for pairs",
            new Dictionary<string, LossKind?> { ["triplet"] = LossKind.Triplet, ["contrastive"] = LossKind.Contrastive });
        private readonly Option<double> _margin = Double("--margin", "loss margin on cosine distance", 0.5, min: 0);
        private readonly Option<double> _lr = Double("--lr", "Adam learning rate", 1e-3, min: double.Epsilon);
        private readonly Option<ulong> _seed = new("--seed")
        {
            Description = "head init and shuffle seed",
            HelpName = "n",
            DefaultValueFactory = _ => 42,
            CustomParser = r => ulong.TryParse(r.Tokens[0].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var s)
                ? s : Error<ulong>(r, $"--seed must be a non-negative integer (was '{r.Tokens[0].Value}')"),
        };

        private readonly Option<int> _k = Int("--k", "recall@k cut-off", 5, min: 1);
        private readonly Option<string> _trainSplit = new("--train-split") { Description = "split to train on", DefaultValueFactory = _ => "train", HelpName = "split" };
        private readonly Option<string> _valSplit = new("--val-split") { Description = "split to evaluate on", DefaultValueFactory = _ => "val", HelpName = "split" };
        private readonly Option<string?> _out = new("--out") { Description = "outputs (default ./trainer-out/<dataset>-<encoder>)", HelpName = "dir" };
        private readonly Option<bool> _noCache = new("--no-cache") { Description = "encode every epoch locally with the same built-in encoder (no service), for comparison" };
        private readonly Option<string?> _dataRoot = new("--data-root") { Description = "datasets for --no-cache (default $EMBEDCACHE_DATA_ROOT or deploy/datasets above the working dir)", HelpName = "dir" };
        private readonly Option<string?> _compare = new("--compare") { Description = "metrics.json of a --no-cache run (or of a cached run) to compare epoch times with", HelpName = "file" };

        public TrainCommand(Func<string, string?> environment)
            : base("train", "Train a similarity head on embeddings streamed from the service (or, with --no-cache, encoded locally).")
        {
            _environment = environment;
            _service = ServiceOption(environment);
            _compare.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<string?>() is { } c && !File.Exists(c))
                    r.AddError($"--compare file '{c}' does not exist");
            });
            foreach (var option in (Option[])[_dataset, _encoder, _service, _apiKey, _epochs, _batchSize, _head, _hidden, _outDim, _loss,
                         _margin, _lr, _seed, _k, _trainSplit, _valSplit, _out, _noCache, _dataRoot, _compare])
                Add(option);
            Validators.Add(r =>
            {
                if (r.GetResult(_dataRoot) is not null && !r.GetValue(_noCache))
                    r.AddError("--data-root is for --no-cache runs (the service reads its own data root)");
            });
        }

        public TrainOptions Bind(ParseResult r)
        {
            var noCache = r.GetValue(_noCache);
            return new TrainOptions
            {
                Dataset = r.GetRequiredValue(_dataset),
                Encoder = r.GetRequiredValue(_encoder),
                Service = r.GetRequiredValue(_service),
                ApiKey = r.GetValue(_apiKey) ?? _environment("EMBEDCACHE_API_KEY"),
                Epochs = r.GetValue(_epochs),
                BatchSize = r.GetValue(_batchSize),
                Head = r.GetValue(_head) ?? HeadKind.Mlp,
                HiddenDim = r.GetValue(_hidden),
                OutputDim = r.GetValue(_outDim),
                Loss = r.GetValue(_loss),
                Margin = r.GetValue(_margin),
                LearningRate = r.GetValue(_lr),
                Seed = r.GetValue(_seed),
                K = r.GetValue(_k),
                TrainSplit = r.GetRequiredValue(_trainSplit),
                ValSplit = r.GetRequiredValue(_valSplit),
                Out = r.GetValue(_out),
                NoCache = noCache,
                DataRoot = noCache ? r.GetValue(_dataRoot) ?? _environment("EMBEDCACHE_DATA_ROOT") ?? DefaultDataRoot(Directory.GetCurrentDirectory()) : null,
                Compare = r.GetValue(_compare),
            };
        }
    }

    private static Option<int> Int(string name, string description, int fallback, int min) => new(name)
    {
        Description = description,
        HelpName = "n",
        DefaultValueFactory = _ => fallback,
        CustomParser = r => ParseInt(r, name, min),
    };

    private static Option<int?> OptionalInt(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "n",
        CustomParser = r => ParseInt(r, name, min: 1),
    };

    private static int ParseInt(ArgumentResult r, string name, int min)
    {
        var v = r.Tokens[0].Value;
        return int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min
            ? n : Error<int>(r, $"{name} must be an integer ≥ {min} (was '{v}')");
    }

    private static Option<double> Double(string name, string description, double fallback, double min) => new(name)
    {
        Description = description,
        HelpName = "x",
        DefaultValueFactory = _ => fallback,
        CustomParser = r =>
        {
            var v = r.Tokens[0].Value;
            return double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x) && x >= min
                ? x : Error<double>(r, $"{name} must be a number ≥ {min.ToString(CultureInfo.InvariantCulture)} (was '{v}')");
        },
    };

    /// <summary>One of a few words, completed by the shell; the error names the option and the words.</summary>
    private static Option<T> Choice<T>(string name, string description, Dictionary<string, T> choices)
    {
        var option = new Option<T>(name)
        {
            Description = description,
            HelpName = string.Join('|', choices.Keys),
            CustomParser = r => choices.TryGetValue(r.Tokens[0].Value, out var value)
                ? value : Error<T>(r, $"{name} must be {string.Join(" or ", choices.Keys)} (was '{r.Tokens[0].Value}')"),
        };
        option.CompletionSources.Clear(); // not the enum's member names: the words the option takes
        option.CompletionSources.Add([.. choices.Keys]);
        return option;
    }

    private static T Error<T>(ArgumentResult result, string message)
    {
        result.AddError(message);
        return default!;
    }
}

/// <summary>Bad command-line usage: one line on stderr, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
