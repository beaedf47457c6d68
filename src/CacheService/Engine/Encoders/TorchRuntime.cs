using System.Runtime.InteropServices;
using TorchSharp;

namespace EmbedCache.Engine.Encoders;

/// <summary>Process-wide TorchSharp settings, applied once before the first model is built.</summary>
internal static partial class TorchRuntime
{
    private static readonly Lazy<int> Threads = new(() =>
    {
        var threads = Environment.ProcessorCount;
        torch.set_num_threads(threads);
        DisableNnpack();
        return threads;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// libtorch asks NNPACK whether it can run every conv2d before looking at the batch size; on CPUs NNPACK
    /// does not support (this machine) each ask retries nnp_initialize and logs "Could not initialize NNPACK",
    /// about 20 ms per conv call. Turning NNPACK off (at::globalContext().setUserEnabledNNPACK(false), not
    /// exposed by TorchSharp) sends convolutions to oneDNN straight away. Where the symbols are missing
    /// (other platforms or libtorch builds) nothing changes.
    /// </summary>
    private static void DisableNnpack()
    {
        if (!OperatingSystem.IsLinux())
            return;
        try
        {
            SetUserEnabledNnpack(GlobalContext(), false);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
    }

    [LibraryImport("torch_cpu", EntryPoint = "_ZN2at13globalContextEv")]
    private static partial IntPtr GlobalContext();

    [LibraryImport("torch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static partial void SetUserEnabledNnpack(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    /// <summary>Intra-op threads: one per core of this host.</summary>
    public static int EnsureInitialized() => Threads.Value;

    /// <summary>
    /// Gives libtorch calls made on the calling thread <paramref name="threads"/> intra-op threads, leaving every other
    /// thread as it is. libtorch's count is per thread underneath — its OpenMP regions take the calling thread's
    /// <c>omp_set_num_threads</c>, MKL the calling thread's <c>mkl_set_num_threads_local</c> — but
    /// <c>torch.set_num_threads</c> also changes the process-wide default that new threads start from, so it cannot
    /// be used for one thread. Fill workers use this so that N workers × their threads do not oversubscribe the
    /// cores (OpenMP teams then wait on descheduled members). False where the symbols are missing.
    /// </summary>
    public static unsafe bool SetThreadsOfCallingThread(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        EnsureInitialized();
        _ = torch.get_num_threads(); // libtorch's first-use set-up of this thread first: it would reset the count later
        var (omp, mkl) = PerThread.Value;
        if (omp == IntPtr.Zero)
            return false;
        ((delegate* unmanaged<int, void>)omp)(threads);
        if (mkl != IntPtr.Zero)
            ((delegate* unmanaged<int, int>)mkl)(threads);
        return true;
    }

    /// <summary>
    /// omp_set_num_threads (libtorch's bundled libgomp, found through libtorch_cpu) and MKL's C entry point
    /// MKL_Set_Num_Threads_Local (mkl_set_num_threads_local is a macro for it; the exported lower-case symbol is the
    /// Fortran one, which takes a pointer).
    /// </summary>
    private static readonly Lazy<(IntPtr Omp, IntPtr Mkl)> PerThread = new(() =>
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("torch_cpu", typeof(TorchRuntime).Assembly, null, out var torchCpu))
            return (IntPtr.Zero, IntPtr.Zero);
        NativeLibrary.TryGetExport(torchCpu, "omp_set_num_threads", out var omp);
        NativeLibrary.TryGetExport(torchCpu, "MKL_Set_Num_Threads_Local", out var mkl);
        return (omp, mkl);
    });
}
