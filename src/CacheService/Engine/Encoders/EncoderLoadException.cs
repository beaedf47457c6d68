namespace EmbedCache.Engine.Encoders;

/// <summary>
/// An encoder could not be created from its configuration (a missing or unreadable model or vocabulary file, a model
/// whose output does not match its settings); the message names the encoder and the file. Thrown by the registry and
/// the encoders as they load.
/// </summary>
public sealed class EncoderLoadException(string message, Exception? innerException = null)
    : EngineException(ErrorKind.FailedPrecondition, message, innerException);
