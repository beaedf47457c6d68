"""Key extractors (Quaterion's ``key_extractors``) and feature batches.

A batch of items is stored under one key scheme:

* ``positional(dataset, split, indices)`` — ``(dataset, split, index)``, Quaterion's default;
* ``custom(items, extractor)`` — bytes chosen per item (a file name, a row id), 1..256 bytes each;
* ``content(features)`` — XxHash128 of each item's feature bytes, computed here exactly as the service
  computes it (UTF-8 text; little-endian float32 data), so the same features share one key across
  datasets, processes and machines. ``content_from_features()`` lets the service hash them instead.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

from .v1 import embedcache_pb2 as pb

try:
    import xxhash as _xxhash

    _xxh3_128 = _xxhash.xxh3_128_digest
except (ImportError, AttributeError) as e:  # pragma: no cover - depends on the host
    raise ImportError("embedcache needs the xxhash package with XXH3-128 (Debian: python3-xxhash)") from e

KeyLike = Union[str, bytes]


def content_hash(data: Union[bytes, bytearray, memoryview]) -> bytes:
    """The 16-byte content key of one item's feature bytes: XXH3-128, big-endian (as the service stores it)."""
    return _xxh3_128(data)


def positional(dataset: str, split: str, indices: Iterable[int]) -> pb.KeyBatch:
    """Keys ``(dataset, split, index)`` for the given item indices."""
    keys = pb.PositionalKeys(dataset=dataset, split=split)
    keys.indices.extend(int(i) for i in indices)
    return pb.KeyBatch(positional=keys)


def custom(items: Iterable, extractor: Optional[Callable[[object], KeyLike]] = None) -> pb.KeyBatch:
    """Keys chosen by ``extractor(item)`` (str → UTF-8, or bytes); without one, the items are the keys."""
    keys = pb.CustomKeys()
    for item in items:
        key = extractor(item) if extractor is not None else item
        keys.keys.append(key.encode("utf-8") if isinstance(key, str) else bytes(key))
    return pb.KeyBatch(custom=keys)


def content(features: pb.FeatureBatch) -> pb.KeyBatch:
    """Content keys computed locally from ``features`` (see :func:`texts` and :func:`tensors`)."""
    return pb.KeyBatch(content=pb.ContentKeys(hashes=b"".join(content_hash(b) for b in feature_bytes(features))))


def content_from_features() -> pb.KeyBatch:
    """Content keys the service computes from the features sent with the lookup."""
    return pb.KeyBatch(content=pb.ContentKeys())


def texts(values: Iterable[str]) -> pb.FeatureBatch:
    """Text features (text encoders)."""
    t = pb.TextFeatures()
    t.texts.extend(values)
    return pb.FeatureBatch(text=t)


def tensors(data, item_shape: Optional[Sequence[int]] = None) -> pb.FeatureBatch:
    """Float features: ``data`` holds N items (an array of shape ``(N, *item_shape)``), sent as float32.

    ``item_shape`` defaults to ``data.shape[1:]``. Torch tensors and anything ``np.asarray`` takes work.
    """
    if hasattr(data, "detach"):  # a torch tensor
        data = data.detach().cpu().numpy()
    array = np.ascontiguousarray(np.asarray(data, dtype="<f4"))
    shape = tuple(item_shape) if item_shape is not None else tuple(array.shape[1:])
    if not shape:
        raise ValueError("give item_shape, or data of shape (N, *item_shape)")
    return pb.FeatureBatch(tensor=pb.TensorFeatures(item_shape=shape, data=array.tobytes()))


def feature_count(features: pb.FeatureBatch) -> int:
    """Items in a feature batch."""
    kind = features.WhichOneof("kind")
    if kind == "text":
        return len(features.text.texts)
    if kind == "tensor":
        item = 4 * int(np.prod(features.tensor.item_shape, dtype=np.int64))
        return len(features.tensor.data) // max(item, 1)
    return 0


def feature_bytes(features: pb.FeatureBatch):
    """Each item's feature bytes, the input of its content hash."""
    kind = features.WhichOneof("kind")
    if kind == "text":
        return [t.encode("utf-8") for t in features.text.texts]
    if kind == "tensor":
        data = memoryview(features.tensor.data)
        item = 4 * int(np.prod(features.tensor.item_shape, dtype=np.int64))
        return [data[i * item:(i + 1) * item] for i in range(len(data) // max(item, 1))]
    return []
