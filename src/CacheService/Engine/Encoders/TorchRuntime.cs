using System.Numerics;
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

    /// <summary>Index of the first NaN or ±Inf (exponent bits all ones), or -1; vectorised.</summary>
    public static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        var bits = MemoryMarshal.Cast<float, uint>(values);
        const uint exponent = 0x7F800000;
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var mask = new Vector<uint>(exponent);
            for (; i + Vector<uint>.Count <= bits.Length; i += Vector<uint>.Count)
            {
                if (Vector.EqualsAny(new Vector<uint>(bits[i..]) & mask, mask))
                    break;
            }
        }

        for (; i < bits.Length; i++)
        {
            if ((bits[i] & exponent) == exponent)
                return i;
        }

        return -1;
    }
}
