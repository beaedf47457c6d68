"""Embeddings and labels of a response, as NumPy / torch views on the received bytes (no copy)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional

import numpy as np

from .v1 import embedcache_pb2 as pb

if TYPE_CHECKING:  # torch is optional
    import torch

#: Stored element type → (name, NumPy dtype of one element). NumPy has no bfloat16: its rows are
#: exposed as the raw uint16 bit patterns (the upper half of a float32); ``torch()`` gives real bfloat16.
DTYPES = {
    pb.DTYPE_FLOAT32: ("float32", np.dtype("<f4")),
    pb.DTYPE_FLOAT16: ("float16", np.dtype("<f2")),
    pb.DTYPE_BFLOAT16: ("bfloat16", np.dtype("<u2")),
}
DTYPES_BY_NAME = {name: dt for name, dt in DTYPES.values()}


def unpack_mask(mask: bytes, count: int) -> np.ndarray:
    """A found bitmask (bit i = ``mask[i // 8] >> (i % 8) & 1``) as ``count`` booleans."""
    if count == 0:
        return np.zeros(0, dtype=bool)
    bits = np.unpackbits(np.frombuffer(mask, dtype=np.uint8), count=count, bitorder="little")
    return bits.view(np.bool_)


def _torch_view(array: np.ndarray, dtype_name: str) -> "torch.Tensor":
    import torch

    # The received bytes are immutable, so the array is read-only; torch warns that it cannot mark a
    # tensor read-only. The view is still shared, not copied: do not write into it.
    bfloat16 = dtype_name == "bfloat16"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # torch has no uint16: bfloat16 bit patterns pass through int16, then reinterpret.
        tensor = torch.from_numpy(array.view(np.int16) if bfloat16 else array)
    return tensor.view(torch.bfloat16) if bfloat16 else tensor


class Embeddings:
    """One encoder's rows for a batch: ``count`` × ``dim`` elements in one packed little-endian buffer.

    ``numpy()`` and ``torch()`` return views on the received bytes (``np.frombuffer``, then
    ``torch.from_numpy``), or on the service's shared-memory ring for an epoch streamed over it (see
    :meth:`embedcache.Client.stream_epoch`): nothing is copied, and the arrays are read-only. ``float32()``
    converts (a copy unless the stored dtype already is float32).
    """

    __slots__ = ("encoder", "fingerprint", "dim", "dtype", "count", "encoded", "raw", "_mask", "_found")

    def __init__(self, encoder: str, fingerprint: str, dim: int, dtype: str, count: int, raw, mask: bytes, encoded: int = 0):
        if dtype not in DTYPES_BY_NAME:
            raise ValueError(f"encoder {encoder!r}: unknown dtype {dtype!r}")
        self.encoder = encoder
        self.fingerprint = fingerprint
        self.dim = dim
        self.dtype = dtype
        self.count = count
        #: Rows encoded by this request (read-through); the rest were cached.
        self.encoded = encoded
        #: The packed rows exactly as received (``count * dim`` elements of ``dtype``): bytes or a memoryview of them.
        self.raw = raw
        self._mask = mask
        self._found: Optional[np.ndarray] = None
        expected = count * dim * DTYPES_BY_NAME[dtype].itemsize
        if len(raw) != expected:
            raise ValueError(f"encoder {encoder!r} sent {len(raw)} bytes for {count} x {dim} {dtype} ({expected} expected)")

    @staticmethod
    def from_message(message: "pb.EncoderEmbeddings", count: int) -> "Embeddings":
        if message.dtype not in DTYPES:
            raise ValueError(f"encoder {message.encoder!r} sent an unknown dtype {message.dtype}")
        return Embeddings(message.encoder, message.fingerprint, message.dim, DTYPES[message.dtype][0], count,
                          message.embeddings, message.found, message.encoded)

    def head(self, n: int) -> "Embeddings":
        """The first ``n`` rows, sharing the bytes."""
        if n >= self.count:
            return self
        row = self.dim * DTYPES_BY_NAME[self.dtype].itemsize
        return Embeddings(self.encoder, self.fingerprint, self.dim, self.dtype, n, memoryview(self.raw)[:n * row], self._mask, self.encoded)

    @property
    def found(self) -> np.ndarray:
        """Which rows hold an embedding (rows not found are zero), as booleans."""
        if self._found is None:
            self._found = unpack_mask(self._mask, self.count)
        return self._found

    def numpy(self) -> np.ndarray:
        """``count × dim`` view: float32 or float16; bfloat16 rows as their uint16 bit patterns."""
        return np.frombuffer(self.raw, dtype=DTYPES_BY_NAME[self.dtype]).reshape(self.count, self.dim)

    def torch(self) -> "torch.Tensor":
        """``count × dim`` tensor of the stored dtype (float32, float16 or bfloat16), sharing the bytes."""
        return _torch_view(self.numpy(), self.dtype)

    def float32(self) -> np.ndarray:
        """A ``count × dim`` float32 array, whatever the stored dtype (float32 rows are not copied)."""
        a = self.numpy()
        if self.dtype == "float32":
            return a
        if self.dtype == "float16":
            return a.astype(np.float32)
        return (a.astype(np.uint32) << 16).view(np.float32)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Embeddings({self.encoder!r}, {self.count}x{self.dim} {self.dtype})"



@dataclass(frozen=True)
class Pairs:
    """Pair labels (contrastive datasets): item ``a[i]`` and ``b[i]`` of the split, with score and subgroup."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    subgroup: np.ndarray


@dataclass(frozen=True)
class Labels:
    """Labels of a batch in item order: ``groups`` (class ids), ``pairs`` or ``opaque`` bytes, and ``found``."""

    found: np.ndarray
    groups: Optional[np.ndarray] = None
    pairs: Optional[Pairs] = None
    opaque: Optional[List[bytes]] = None

    @staticmethod
    def from_message(message: "pb.LabelBatch", count: int, groups: Optional[np.ndarray] = None) -> "Labels":
        """Labels of ``count`` items; ``groups`` are the group ids when they were decoded already."""
        kind = message.WhichOneof("kind")
        pairs = opaque = None
        if kind != "groups":
            groups = None
        if kind == "groups" and groups is None:
            groups = np.fromiter(message.groups.group_ids, dtype=np.int64, count=len(message.groups.group_ids))
        elif kind == "pairs":
            p = message.pairs
            count = len(p.a_index)  # the mask covers the pairs
            pairs = Pairs(
                np.fromiter(p.a_index, dtype=np.uint64, count=len(p.a_index)),
                np.fromiter(p.b_index, dtype=np.uint64, count=len(p.b_index)),
                np.fromiter(p.score, dtype=np.float32, count=len(p.score)),
                np.fromiter(p.subgroup, dtype=np.int64, count=len(p.subgroup)),
            )
        elif kind == "opaque":
            opaque = list(message.opaque.values)
        return Labels(unpack_mask(message.found, count), groups, pairs, opaque)
