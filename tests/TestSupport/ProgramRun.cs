using System.Diagnostics;
using System.Text;

namespace EmbedCache.TestSupport;

/// <summary>Runs any program to its end with captured output: <c>node</c>, <c>docker</c>, a built CLI, the bench's trainer runs.</summary>
public static class ProgramRun
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}";
    }

    public static async Task<Result> RunAsync(string fileName, IEnumerable<string> args, string? workingDirectory = null,
        IDictionary<string, string>? environment = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var info = StartInfo(fileName, args, workingDirectory, environment);
        using var process = new Process { StartInfo = info };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                lock (stdout)
                    stdout.AppendLine(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                lock (stderr)
                    stderr.AppendLine(e.Data);
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var exited = process.WaitForExitAsync(cancellationToken);
        try
        {
            await Wait.ForAsync(exited.ContinueWith(_ => 0, TaskScheduler.Default),
                $"{fileName} {string.Join(' ', info.ArgumentList)} to exit", timeout ?? TimeSpan.FromMinutes(5));
        }
        catch (TimeoutException timedOut)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            // The output so far is what tells a hang apart from slowness.
            lock (stdout)
            lock (stderr)
                throw new TimeoutException($"{timedOut.Message}; its output so far:\n{stdout}\n[stderr]\n{stderr}", timedOut);
        }

        if (exited.IsCanceled)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
        }

        await process.WaitForExitAsync(CancellationToken.None);
        lock (stdout)
        lock (stderr)
            return new Result(process.ExitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>
    /// How this project starts a program (<see cref="RunAsync"/> and <see cref="ChildProcess"/>): output redirected,
    /// no shell, the .NET CLI's banner and telemetry off, <paramref name="environment"/> on top of this process's.
    /// </summary>
    internal static ProcessStartInfo StartInfo(string fileName, IEnumerable<string> args, string? workingDirectory, IDictionary<string, string>? environment)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        if (environment is not null)
        {
            foreach (var (k, v) in environment)
                info.Environment[k] = v;
        }

        return info;
    }

    /// <summary>The full path of a program on PATH, or null.</summary>
    public static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path))
                return path;
        }

        return null;
    }
}
