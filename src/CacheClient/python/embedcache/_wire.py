"""Reading responses without copying their embeddings (the Python side of the .NET client's PooledBatches).

gRPC hands each response over as one ``bytes`` object. Parsed by protobuf, its embedding buffer would be
copied twice (into the C++ message, then into a new ``bytes`` on access) and its repeated integers
converted one Python object at a time. Instead, this module walks the message's wire format just far
enough to find the big fields — the ``embeddings`` of each encoder, the packed item ``indices`` and the
packed group ids — and leaves them where they are: embeddings become views on the received bytes,
packed integers are decoded by NumPy in one pass. Everything else (names, dims, masks, pairs, any field
added to the contract later) is re-assembled into a small message and parsed by protobuf as usual. A
message that does not look as expected (e.g. integers not packed) is parsed by protobuf whole.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

TAKE = "take"
Ranges = Dict[int, list]  # field number -> per occurrence: (start, end) for TAKE, a nested Ranges for a plan

# Field numbers from protos/embedcache/v1/embedcache.proto.
DATASET_BATCH = {3: TAKE, 4: {6: TAKE}, 5: {2: {1: TAKE}}}  # indices; results[].embeddings; labels.groups.group_ids
LOOKUP_RESPONSE = {3: {6: TAKE}, 4: {2: {1: TAKE}}}  # results[].embeddings; labels.groups.group_ids


class Unexpected(Exception):
    """The message is not laid out as the plan expects: parse it with protobuf instead."""


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Unexpected("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def split(buf: bytes, plan: dict, start: int = 0, end: int = -1) -> Tuple[bytes, Ranges]:
    """(the message without the planned fields, where those fields are in ``buf``)."""
    end = len(buf) if end < 0 else end
    out = bytearray()
    ranges: Ranges = {}
    pos = start
    while pos < end:
        tag_start = pos
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        value_start = pos
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, value_start = _varint(buf, pos)
            pos = value_start + length
        else:
            raise Unexpected(f"wire type {wire}")
        if pos > end:
            raise Unexpected("truncated")
        action = plan.get(field)
        if action is None:
            out += buf[tag_start:pos]
        elif wire != 2:
            raise Unexpected(f"field {field} is not length-delimited")
        elif action == TAKE:
            ranges.setdefault(field, []).append((value_start, pos))
        else:
            inner, inner_ranges = split(buf, action, value_start, pos)
            out += _encode_varint(tag) + _encode_varint(len(inner)) + inner
            ranges.setdefault(field, []).append(inner_ranges)
    return bytes(out), ranges


def packed_varints(buf: bytes, spans: List[Tuple[int, int]]) -> np.ndarray:
    """Packed varint fields (possibly in several chunks) as uint64, decoded in one vectorised pass."""
    if not spans:
        return np.zeros(0, dtype=np.uint64)
    parts = [np.frombuffer(buf, dtype=np.uint8, count=e - s, offset=s) for s, e in spans if e > s]
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    b = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if b[-1] & 0x80:
        raise Unexpected("truncated varint")
    last = b < 0x80
    if last.all():
        return b.astype(np.uint64)
    # Byte k of every varint at once, for k = 0 .. longest-1 (at most 10).
    ends = np.flatnonzero(last)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise Unexpected("varint too long")
    low = (b & 0x7F).astype(np.uint64)
    result = low[starts]
    for k in range(1, int(lengths.max())):
        longer = lengths > k
        result[longer] |= low[starts[longer] + k] << np.uint64(7 * k)
    return result


def spans(ranges: Ranges, *path: int) -> List[Tuple[int, int]]:
    """Every (start, end) taken along ``path`` of nested fields, over all their occurrences, in order."""
    nodes = [ranges]
    for field in path[:-1]:
        nodes = [child for node in nodes for child in node.get(field, [])]
    return [span for node in nodes for span in node.get(path[-1], [])]
