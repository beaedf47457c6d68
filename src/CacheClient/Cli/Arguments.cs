namespace EmbedCache.Cli;

/// <summary>
/// A small POSIX-style parser: positional words, <c>--name value</c>, <c>--name=value</c>,
/// repeatable options and flags. Unknown options are errors, so typos do not pass silently.
/// </summary>
internal sealed class Arguments
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    private Arguments(List<string> positional) => Positional = positional;

    public List<string> Positional { get; }

    public static Arguments Parse(IReadOnlyList<string> args, IReadOnlySet<string> flags, IReadOnlySet<string> options)
    {
        var positional = new List<string>();
        var result = new Arguments(positional);
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal))
            {
                positional.Add(a);
                continue;
            }

            var eq = a.IndexOf('=', StringComparison.Ordinal);
            var name = eq > 0 ? a[2..eq] : a[2..];
            if (flags.Contains(name))
            {
                result._flags.Add(name);
                continue;
            }

            if (!options.Contains(name))
                throw new UsageException($"unknown option --{name}");
            string value;
            if (eq > 0)
                value = a[(eq + 1)..];
            else if (i + 1 < args.Count)
                value = args[++i];
            else
                throw new UsageException($"--{name} needs a value");
            if (!result._options.TryGetValue(name, out var list))
                result._options[name] = list = [];
            list.Add(value);
        }

        return result;
    }

    public bool Flag(string name) => _flags.Contains(name);

    public string? Value(string name) => _options.TryGetValue(name, out var v) ? v[^1] : null;

    public IReadOnlyList<string> Values(string name) =>
        _options.TryGetValue(name, out var v) ? v.SelectMany(x => x.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList() : [];

    public uint UInt(string name, uint fallback)
    {
        var v = Value(name);
        if (v is null)
            return fallback;
        return uint.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
            ? n : throw new UsageException($"--{name} must be a non-negative integer (was '{v}')");
    }

    public ulong ULong(string name, ulong fallback)
    {
        var v = Value(name);
        if (v is null)
            return fallback;
        return ulong.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
            ? n : throw new UsageException($"--{name} must be a non-negative integer (was '{v}')");
    }
}

/// <summary>Bad command-line usage: printed with the usage text, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
