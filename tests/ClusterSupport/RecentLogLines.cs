using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace EmbedCache.ClusterSupport;

/// <summary>
/// The logger factory of one in-process Garnet node: keeps its last lines (information and above) for failure
/// messages, and prints nothing, so a passing test's output stays clean.
/// </summary>
internal sealed class RecentLogLines(int keep) : ILoggerFactory
{
    private readonly ConcurrentQueue<string> _lines = new();

    public string Tail => string.Join('\n', _lines);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void AddProvider(ILoggerProvider provider) =>
        throw new NotSupportedException($"{nameof(RecentLogLines)} only keeps lines in memory.");

    public void Dispose()
    {
    }

    private void Add(string line)
    {
        _lines.Enqueue(line);
        while (_lines.Count > keep)
            _lines.TryDequeue(out _);
    }

    private sealed class Logger(RecentLogLines owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
                return;
            var time = DateTime.Now.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);
            owner.Add($"{time} {logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message})")}");
        }
    }
}
