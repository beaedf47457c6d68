"""Python client for EmbedCache, the embedding-cache service for training on frozen encoders.

    import embedcache
    from embedcache import keys

    with embedcache.Client("127.0.0.1:50051") as client:
        for progress in client.prewarm("digits", encoders=["random-mlp"]):
            pass
        for batch in client.stream_epoch("digits", "train", "random-mlp", shuffle=True, include_labels=True):
            x = batch["random-mlp"].torch()       # a view on the received bytes
            y = batch.labels.groups

``embedcache.EmbedCacheDataset`` (needs torch) streams a split to a training loop, sharded across
DDP ranks and DataLoader workers.
"""
from . import errors, keys
from .arrays import Embeddings, Labels, Pairs, unpack_mask
from .client import Client, EncoderInfo, EpochBatch, JobProgress, LookupResult, NamespaceStats, Stats
from .errors import EmbedCacheError

__all__ = [
    "Client", "EmbedCacheDataset", "EmbedCacheError", "Embeddings", "EncoderInfo", "EpochBatch", "JobProgress",
    "Labels", "LookupResult", "NamespaceStats", "Pairs", "Stats", "errors", "keys", "unpack_mask",
]
__version__ = "0.1.0"


def __getattr__(name):
    # torch is optional: import the dataset class only when it is asked for.
    if name == "EmbedCacheDataset":
        from .dataset import EmbedCacheDataset

        return EmbedCacheDataset
    raise AttributeError(f"module 'embedcache' has no attribute {name!r}")
