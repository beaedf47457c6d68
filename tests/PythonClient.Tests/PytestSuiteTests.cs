using EmbedCache.TestSupport;
using Xunit.Abstractions;

namespace EmbedCache.PythonClient.Tests;

/// <summary>
/// The Python client's pytest suite as one test: the package is installed the documented way (a fresh venv of
/// Debian's python3 with --system-site-packages, pip offline without build isolation), then pytest runs; its
/// fixtures start the built service on loopback. pytest's output is the failure message.
/// </summary>
public sealed class PytestSuiteTests(ITestOutputHelper output)
{
    // Debian's interpreter, whose python3-grpcio, -grpc-tools, -numpy, -torch, -xxhash and -pytest CI installs.
    private const string Python = "/usr/bin/python3";
    private static readonly string[] Needed = ["grpc", "grpc_tools", "google.protobuf", "numpy", "torch", "xxhash", "pytest", "setuptools", "wheel"];

    [Fact]
    public async Task PythonClientSuite_PassesAgainstTheBuiltService()
    {
        var check = await ProgramRun.RunAsync(Python, ["-c", $"import {string.Join(", ", Needed)}"]);
        Assert.True(check.ExitCode == 0, $"{Python} lacks a module the Python client needs (install the Debian packages in .ci/apt-packages):\n{check}");

        using var temp = new TempDirectory("python-client");
        var package = temp.Combine("python");
        CopySource(Path.Combine(RepoPaths.Root, "src", "CacheClient", "python"), package);
        var venv = temp.Combine("venv");
        var venvPython = Path.Combine(venv, "bin", "python");
        var environment = new Dictionary<string, string>
        {
            ["EMBEDCACHE_PROTOS"] = Path.Combine(RepoPaths.Root, "protos"),
            ["EMBEDCACHE_REPO_ROOT"] = RepoPaths.Root,
            ["EMBEDCACHE_SERVICE_DLL"] = RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService"),
            ["EMBEDCACHE_CLIENT_PROBE_DLL"] = RepoPaths.BuiltTestProgram("ClientProbe", "EmbedCache.ClientProbe"),
            ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1",
            ["PYTHONDONTWRITEBYTECODE"] = "1",
        };

        await Step(Python, ["-m", "venv", "--system-site-packages", venv], temp.Path, environment, "create the venv");
        await Step(venvPython, ["-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-cache-dir", package],
            temp.Path, environment, "pip install the package");

        // From the temp root, so `import embedcache` finds the installed package, not the copied sources.
        var pytest = await ProgramRun.RunAsync(venvPython,
            ["-m", "pytest", Path.Combine(package, "tests"), "-v", "-ra", "-p", "no:cacheprovider", "-o", "faulthandler_timeout=240", "--basetemp", temp.Combine("pytest")],
            temp.Path, environment, TimeSpan.FromMinutes(8)); // inside the 10 min hang timeout, so a hang reports pytest's output
        output.WriteLine(pytest.Output);
        Assert.True(pytest.ExitCode == 0, $"pytest failed:\n{pytest}");
    }

    private async Task Step(string program, string[] args, string directory, Dictionary<string, string> environment, string what)
    {
        var r = await ProgramRun.RunAsync(program, args, directory, environment, TimeSpan.FromMinutes(5));
        output.WriteLine($"$ {program} {string.Join(' ', args)}\n{r.Output}");
        Assert.True(r.ExitCode == 0, $"could not {what}:\n{r}");
    }

    /// <summary>The package's sources only: no build output or stubs left by a local install.</summary>
    private static void CopySource(string from, string to)
    {
        string[] skipped = ["build", "__pycache__", ".pytest_cache", "v1"];
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var dir in Directory.GetDirectories(from))
        {
            var name = Path.GetFileName(dir);
            if (!skipped.Contains(name) && !name.EndsWith(".egg-info", StringComparison.Ordinal))
                CopySource(dir, Path.Combine(to, name));
        }
    }
}
