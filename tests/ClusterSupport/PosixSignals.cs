using System.Runtime.InteropServices;

namespace EmbedCache.ClusterSupport;

/// <summary>SIGSTOP and SIGCONT, which <see cref="EmbedCache.TestSupport.ChildProcess"/> does not send.</summary>
internal static partial class PosixSignals
{
    private const int SigCont = 18;
    private const int SigStop = 19;

    /// <summary>Freezes a process as a whole: it keeps its sockets open but runs no code until <see cref="Continue"/>.</summary>
    public static void Stop(int pid) => Send(pid, SigStop, "SIGSTOP");

    public static void Continue(int pid) => Send(pid, SigCont, "SIGCONT");

    private static void Send(int pid, int signal, string name)
    {
        if (kill(pid, signal) != 0)
            throw new InvalidOperationException($"kill({pid}, {name}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);
}
