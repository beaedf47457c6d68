using System.Reflection;
using EmbedCache.Bench;

var benches = typeof(IBench).Assembly.GetTypes()
    .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IBench).IsAssignableFrom(t))
    .Select(t => (IBench)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name, StringComparer.Ordinal)
    .ToList();

var bench = args.Length > 0 ? benches.FirstOrDefault(b => b.Name == args[0]) : null;
if (bench is null)
{
    Console.WriteLine("usage: EmbedCache.Bench <name> [options]");
    foreach (var b in benches)
        Console.WriteLine($"  {b.Name,-14} {b.Description}");
    return args.Length == 0 ? 0 : 2;
}

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
return await bench.RunAsync(args[1..], cts.Token);
