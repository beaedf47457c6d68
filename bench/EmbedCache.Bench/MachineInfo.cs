using System.Runtime.InteropServices;

namespace EmbedCache.Bench;

/// <summary>The machine line every results table starts with.</summary>
public static class MachineInfo
{
    public static string Describe()
    {
        var memGb = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024);
        return $"{Environment.ProcessorCount} cores, {memGb:0} GiB, {OsName()}, {RuntimeInformation.FrameworkDescription}, " +
               $"{DateTime.UtcNow:yyyy-MM-dd}";
    }

    /// <summary>The 1-, 5- and 15-minute load averages, as /proc/loadavg gives them.</summary>
    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    private static string OsName()
    {
        try
        {
            foreach (var line in File.ReadLines("/etc/os-release"))
            {
                if (line.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))
                    return line["PRETTY_NAME=".Length..].Trim('"');
            }
        }
        catch (IOException)
        {
        }

        return RuntimeInformation.OSDescription;
    }
}
