using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace EmbedCache.Bench;

/// <summary>
/// A process the benchmark started (the service, the transport servers, redis-server, the trainer): output
/// kept (last lines) for error messages, resident memory from /proc, stopped by its own pid only.
/// </summary>
public sealed partial class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _tail = new();
    private readonly Func<string, bool>? _onLine;

    private ChildProcess(Process process, Func<string, bool>? onLine)
    {
        _process = process;
        _onLine = onLine;
    }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public static ChildProcess Start(string fileName, IEnumerable<string> args, Func<string, bool>? onLine = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var process = new Process { StartInfo = info };
        var child = new ChildProcess(process, onLine);
        process.OutputDataReceived += (_, e) => child.Line(e.Data);
        process.ErrorDataReceived += (_, e) => child.Line(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    private void Line(string? line)
    {
        if (line is null)
            return;
        _tail.Enqueue(line);
        while (_tail.Count > 60)
            _tail.TryDequeue(out _);
        _onLine?.Invoke(line);
    }

    public string Tail => string.Join(Environment.NewLine, _tail);

    /// <summary>Closes the child's stdin (the transport server stops on that).</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>Resident set size from /proc/&lt;pid&gt;/status (VmRSS).</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(Digits().Match(line).Value, CultureInfo.InvariantCulture) * 1024;
        }

        throw new InvalidOperationException($"no VmRSS for pid {Pid}");
    }

    /// <summary>SIGTERM (a graceful stop: the service checkpoints on shutdown), then waits; SIGKILL after the timeout.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        if (_process.HasExited)
            return;
        using (var kill = Process.Start("kill", ["-TERM", Pid.ToString(CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
    }

    public async Task<int> WaitAsync(CancellationToken token)
    {
        await _process.WaitForExitAsync(token);
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill();
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Digits();
}
