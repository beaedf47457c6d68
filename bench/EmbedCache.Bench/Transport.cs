using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EmbedCache.Bench;

/// <summary>
/// The transport ceilings of <c>compare</c>: a bare gRPC server stream (no store, no encoder, no protobuf
/// message — one pre-filled payload written per message by a custom marshaller) and raw loopback TCP with
/// plain sockets. Both send <c>count</c> messages of <c>size</c> bytes; the request is those two int32s.
/// </summary>
public static class Transport
{
    private const string ServiceName = "embedcache.bench.Bare";

    /// <summary>Server side: request (count, size) in, payload out, written straight from one buffer.</summary>
    public static readonly Method<byte[], Payload> ServerMethod = new(MethodType.ServerStreaming, ServiceName, "Stream",
        Marshallers.Create(r => r, b => b),
        new Marshaller<Payload>(
            (Payload p, SerializationContext ctx) =>
            {
                ctx.SetPayloadLength(p.Length);
                var writer = ctx.GetBufferWriter();
                writer.Write(p.Buffer.AsSpan(0, p.Length));
                ctx.Complete();
            },
            (Func<DeserializationContext, Payload>)(_ => throw new NotSupportedException())));

    /// <summary>Client side: the payload is read without copying it into a new array (PayloadAsReadOnlySequence).</summary>
    private static readonly Method<byte[], Received> ClientMethod = new(MethodType.ServerStreaming, ServiceName, "Stream",
        Marshallers.Create(r => r, b => b),
        new Marshaller<Received>(
            (Action<Received, SerializationContext>)((_, _) => throw new NotSupportedException()),
            (Func<DeserializationContext, Received>)(ctx => new Received(ctx.PayloadAsReadOnlySequence().Length))));

    public sealed class Payload(byte[] buffer, int length)
    {
        public byte[] Buffer { get; } = buffer;

        public int Length { get; } = length;
    }

    private sealed class Received(long length)
    {
        public long Length { get; } = length;
    }

    private static byte[] Request(int count, int size)
    {
        var r = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(r, count);
        BinaryPrimitives.WriteInt32LittleEndian(r.AsSpan(4), size);
        return r;
    }

    /// <summary>Streams count × size bytes over gRPC; returns the bytes received.</summary>
    public static async Task<long> GrpcStreamAsync(Grpc.Net.Client.GrpcChannel channel, int count, int size, CancellationToken token)
    {
        var invoker = channel.CreateCallInvoker();
        using var call = invoker.AsyncServerStreamingCall(ClientMethod, null, new CallOptions(cancellationToken: token), Request(count, size));
        long total = 0;
        while (await call.ResponseStream.MoveNext(token))
            total += call.ResponseStream.Current.Length;
        return total;
    }

    /// <summary>Reads count × size bytes over one TCP connection into a reused buffer; returns the bytes received.</summary>
    public static async Task<long> TcpStreamAsync(int port, int count, int size, CancellationToken token)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), token);
        await socket.SendAsync(Request(count, size), token);
        var buffer = new byte[1 << 20];
        long total = 0;
        var expected = (long)count * size;
        while (total < expected)
        {
            var n = await socket.ReceiveAsync(buffer, token);
            if (n == 0)
                break;
            total += n;
        }

        return total;
    }

    /// <summary>Runs both servers on free loopback ports until stdin closes; prints "ports grpc=N tcp=M".</summary>
    public static async Task<int> ServeAsync(CancellationToken token)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddSingleton<IServiceMethodProvider<BareStreamService>, BareStreamService.MethodProvider>();
        builder.Services.AddGrpc(o =>
        {
            o.MaxSendMessageSize = null;
            o.MaxReceiveMessageSize = null;
        });
        await using var app = builder.Build();
        app.MapGrpcService<BareStreamService>();
        await app.StartAsync(token);
        var grpcPort = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;

        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var tcpPort = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(token);
        var accept = AcceptLoopAsync(listener, stop.Token);
        Console.WriteLine($"ports grpc={grpcPort} tcp={tcpPort}");
        Console.Out.Flush();
        await Task.Run(() => Console.In.ReadToEnd(), token); // the parent closes stdin to stop us
        await stop.CancelAsync();
        await app.StopAsync(CancellationToken.None);
        try
        {
            await accept;
        }
        catch (OperationCanceledException)
        {
        }

        return 0;
    }

    private static async Task AcceptLoopAsync(Socket listener, CancellationToken token)
    {
        while (!token.IsCancellationRequested)
        {
            var client = await listener.AcceptAsync(token);
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    client.NoDelay = true;
                    var request = new byte[8];
                    var got = 0;
                    while (got < 8)
                    {
                        var n = await client.ReceiveAsync(request.AsMemory(got), token);
                        if (n == 0)
                            return;
                        got += n;
                    }

                    var count = BinaryPrimitives.ReadInt32LittleEndian(request);
                    var size = BinaryPrimitives.ReadInt32LittleEndian(request.AsSpan(4));
                    var payload = Filled(size);
                    for (var i = 0; i < count; i++)
                        await client.SendAsync(payload, token);
                    client.Shutdown(SocketShutdown.Send);
                }
            }, token);
        }
    }

    internal static byte[] Filled(int size)
    {
        var payload = new byte[size];
        new Random(size).NextBytes(payload);
        return payload;
    }
}

/// <summary>The bare gRPC service: writes the same pre-filled payload <c>count</c> times.</summary>
public sealed class BareStreamService
{
    /// <summary>Registers the one method without a .proto (grpc-dotnet's documented route for custom methods).</summary>
    public sealed class MethodProvider : IServiceMethodProvider<BareStreamService>
    {
        public void OnServiceMethodDiscovery(ServiceMethodProviderContext<BareStreamService> context) =>
            context.AddServerStreamingMethod(Transport.ServerMethod, [], (service, request, writer, ctx) => service.Stream(request, writer, ctx));
    }

#pragma warning disable CA1822 // an instance method: grpc-dotnet resolves the service per call
    public async Task Stream(byte[] request, IServerStreamWriter<Transport.Payload> writer, ServerCallContext context)
    {
        var count = BinaryPrimitives.ReadInt32LittleEndian(request);
        var size = BinaryPrimitives.ReadInt32LittleEndian(request.AsSpan(4));
        var payload = new Transport.Payload(Transport.Filled(size), size);
        for (var i = 0; i < count; i++)
            await writer.WriteAsync(payload, context.CancellationToken);
    }
#pragma warning restore CA1822
}

/// <summary>Hidden helper command: the transport servers as a separate process (so client and server do not share one runtime).</summary>
public sealed class TransportServerBench : IBench
{
    public string Name => "transport-server";

    public string Description => "(used by compare) bare gRPC + raw TCP servers on free loopback ports until stdin closes";

    public Task<int> RunAsync(string[] args, CancellationToken cancellationToken) => Transport.ServeAsync(cancellationToken);
}
