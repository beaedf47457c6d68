using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace EmbedCache.TestSupport;

/// <summary>
/// A built project run as a child process (<c>dotnet X.dll args</c>), its output captured
/// line by line, so tests can wait for a line, send SIGTERM or SIGKILL and read the exit code.
/// </summary>
public sealed partial class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProcess(Process process) => _process = process;

    public static ChildProcess Start(string assemblyPath, IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(assemblyPath)!,
        };
        info.ArgumentList.Add(assemblyPath);
        foreach (var a in args)
            info.ArgumentList.Add(a);
        info.Environment["DOTNET_NOLOGO"] = "1";
        // A service started without a SaveDir stores under $XDG_DATA_HOME/embedcache: never the user's own. Tests give
        // each service its own SaveDir (or Store:MemoryOnly); this keeps one that forgot out of ~/.local/share.
        info.Environment["XDG_DATA_HOME"] = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "embedcache-tests", "xdg-data-home");
        if (environment is not null)
        {
            foreach (var (k, v) in environment)
                info.Environment[k] = v;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                child._lines.Enqueue(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
                return;
            child._lines.Enqueue(e.Data);
            lock (child._stderr)
                child._stderr.AppendLine(e.Data);
        };
        process.Exited += (_, _) => child._exited.TrySetResult();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

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

    public async Task<int> WaitForExitAsync(string what, TimeSpan? timeout = null)
    {
        await Wait.ForAsync(_exited.Task.ContinueWith(_ => 0, TaskScheduler.Default), what, timeout);
        await _process.WaitForExitAsync();
        return _process.ExitCode;
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
}
