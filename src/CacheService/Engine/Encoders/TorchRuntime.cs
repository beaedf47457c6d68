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
}
