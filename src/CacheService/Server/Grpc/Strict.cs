using Google.Protobuf;
using Grpc.Core;

namespace EmbedCache.Server.Grpc;

/// <summary>Protobuf marshallers whose request side fails with INVALID_ARGUMENT instead of an exception.</summary>
internal static class Strict
{
    public static Method<TRequest, TResponse> Method<TRequest, TResponse>(
        MethodType type, string service, string name, MessageParser<TRequest> request, MessageParser<TResponse> response)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse> =>
        new(type, service, name, Marshaller(request), Marshaller(response));

    private static Marshaller<T> Marshaller<T>(MessageParser<T> parser)
        where T : class, IMessage<T> =>
        new(
            (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context =>
            {
                try
                {
                    return parser.ParseFrom(context.PayloadAsReadOnlySequence());
                }
                catch (InvalidProtocolBufferException e)
                {
                    throw new RpcException(new Status(StatusCode.InvalidArgument,
                        $"the message is not a valid {typeof(T).Name} ({e.Message.TrimEnd('.')})"));
                }
            });
}
