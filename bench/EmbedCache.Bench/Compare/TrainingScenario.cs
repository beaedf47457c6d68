using System.Globalization;
using static EmbedCache.Bench.Compare.Processes;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// The trainer on the MiniLM-shaped encoder (random-minilm) over the text dataset: cached through the service over TCP
/// and over its Unix socket (the shared-memory ring), and with <c>--no-cache</c>.
/// </summary>
internal static class TrainingScenario
{
    public static async Task RunAsync(CompareReport report, string trainerDll, Uri service, Uri socket, string dataRoot, string root, Settings s, CancellationToken token)
    {
        var epochs = s.TrainEpochs.ToString(CultureInfo.InvariantCulture);
        var cached = await RunTrainerAsync(trainerDll, Path.Combine(root, "train-cached"),
            ["train", "--dataset", "text", "--encoder", "random-minilm", "--epochs", epochs, "--service", service.ToString().TrimEnd('/')], token);
        // The same cached training on the service's Unix socket: its epochs take the shared-memory ring.
        var shared = await RunTrainerAsync(trainerDll, Path.Combine(root, "train-shared"),
            ["train", "--dataset", "text", "--encoder", "random-minilm", "--epochs", epochs, "--service", socket.ToString()], token);
        report.Extra.Add(FormattableString.Invariant(
            $"| training, {s.TrainEpochs} epochs, minilm, cached: shared memory (`--service unix://…`) | {shared.Wall:0.0} s wall; epochs {shared.Epochs} s | gRPC over TCP: {cached.Wall:0.0} s wall; epochs {cached.Epochs} s | **{cached.Steady / shared.Steady:0.00}×** per steady epoch |"));
        var local = await RunTrainerAsync(trainerDll, Path.Combine(root, "train-local"),
            ["train", "--dataset", "text", "--encoder", "random-minilm", "--epochs", epochs, "--no-cache", "--data-root", dataRoot], token);
        report.Extra.Add(FormattableString.Invariant(
            $"| training, {s.TrainEpochs} epochs, minilm (6 layers, 384), {s.Sentences} + {s.Sentences / 3} sentences: cached (service) | {cached.Wall:0.0} s wall; epochs {cached.Epochs} s | `--no-cache` (encode every epoch, in process): {local.Wall:0.0} s wall; epochs {local.Epochs} s | **{local.Wall / cached.Wall:0.0}×** wall, **{local.Steady / cached.Steady:0.0}×** per steady epoch |"));
    }
}
