using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace EmbedCache.TestSupport;

/// <summary>
/// A program run as a child process, its output (stdout and stderr) captured line by line, so tests can wait for a
/// line, send SIGTERM or SIGKILL and read the exit code. The bench (bench/EmbedCache.Bench) starts its servers with it
/// too: it stops them gracefully (<see cref="StopAsync"/>), reads their resident memory and shows their last lines
/// when one fails. A program run to its end is <see cref="ProgramRun"/>.
/// </summary>
public sealed partial class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action<string>? _onLine;
    private readonly int _keepLines;

    private ChildProcess(Process process, Action<string>? onLine, int keepLines)
    {
        _process = process;
        _onLine = onLine;
        _keepLines = keepLines;
    }

    /// <summary>
    /// A built .NET program, <c>dotnet X.dll args</c>, run in the assembly's folder. Its data home
    /// (<c>XDG_DATA_HOME</c>) is under the tests' temp folder, unless <paramref name="environment"/> sets it.
    /// </summary>
    public static ChildProcess Start(string assemblyPath, IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        // A service started without a SaveDir stores under $XDG_DATA_HOME/embedcache: never the user's own. Tests give
        // each service its own SaveDir (or Store:MemoryOnly); this keeps one that forgot out of ~/.local/share.
        var env = new Dictionary<string, string>
        {
            ["XDG_DATA_HOME"] = Path.Combine(Path.GetTempPath(), "embedcache-tests", "xdg-data-home"),
        };
        if (environment is not null)
        {
            foreach (var (k, v) in environment)
                env[k] = v;
        }

        return StartProgram("dotnet", [assemblyPath, .. args], Path.GetDirectoryName(assemblyPath)!, env);
    }

    /// <summary>Any program (<c>redis-server</c>, <c>dotnet X.dll</c>, …).</summary>
    /// <param name="workingDirectory">Default: this process's current directory.</param>
    /// <param name="onLine">Sees every line of the program's output as it comes (on a thread-pool thread).</param>
    /// <param name="keepLines">How many of the last lines <see cref="Output"/> keeps (a server that runs long: its tail).</param>
    public static ChildProcess StartProgram(string fileName, IEnumerable<string> args, string? workingDirectory = null,
        IDictionary<string, string>? environment = null, Action<string>? onLine = null, int keepLines = int.MaxValue)
    {
        var info = ProgramRun.StartInfo(fileName, args, workingDirectory, environment);
        info.RedirectStandardInput = true;
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(process, onLine, keepLines);
        process.OutputDataReceived += (_, e) => child.Line(e.Data, error: false);
        process.ErrorDataReceived += (_, e) => child.Line(e.Data, error: true);
        process.Exited += (_, _) => child._exited.TrySetResult();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    private void Line(string? line, bool error)
    {
        if (line is null)
            return;
        _lines.Enqueue(line);
        while (_lines.Count > _keepLines)
            _lines.TryDequeue(out _);
        if (error)
        {
            lock (_stderr)
                _stderr.AppendLine(line);
        }

        _onLine?.Invoke(line);
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The output lines kept (all of them, unless the start said how many to keep).</summary>
    public string Output => string.Join('\n', _lines);

    public string StandardError
    {
        get
        {
            lock (_stderr)
                return _stderr.ToString();
        }
    }

    /// <summary>Waits for an output line matching <paramref name="pattern"/> and returns its match.</summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, string what, TimeSpan? timeout = null)
    {
        Match? found = null;
        await Wait.UntilAsync(() =>
        {
            foreach (var line in _lines)
            {
                var m = pattern.Match(line);
                if (m.Success)
                {
                    found = m;
                    return true;
                }
            }

            if (_process.HasExited)
                throw new InvalidOperationException($"Process exited ({_process.ExitCode}) before {what}. Output:\n{Output}");
            return false;
        }, what, timeout);
        return found!;
    }

    /// <summary>Sends SIGTERM, the way a container runtime or Ctrl+C stops the service.</summary>
    public void Terminate()
    {
        if (kill(_process.Id, 15) != 0)
            throw new InvalidOperationException($"kill(SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>A graceful stop (the service checkpoints on shutdown): SIGTERM, then waits; SIGKILL after <paramref name="timeout"/>.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        if (_process.HasExited)
            return;
        if (kill(_process.Id, 15) != 0 && !_process.HasExited)
            throw new InvalidOperationException($"kill(SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            await _process.WaitForExitAsync();
        }
    }

    public async Task<int> WaitForExitAsync(string what, TimeSpan? timeout = null)
    {
        await Wait.ForAsync(_exited.Task.ContinueWith(_ => 0, TaskScheduler.Default), what, timeout);
        await _process.WaitForExitAsync();
        return _process.ExitCode;
    }

    /// <summary>Closes the child's stdin (the bench's transport server stops on that).</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>Resident set size from /proc/&lt;pid&gt;/status (VmRSS).</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(Digits().Match(line).Value, CultureInfo.InvariantCulture) * 1024;
        }

        throw new InvalidOperationException($"no VmRSS for pid {Id}");
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Digits();
}
