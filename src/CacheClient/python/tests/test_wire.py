"""Reading responses in place (embedcache._wire) gives what protobuf gives, without copying the embeddings."""
import numpy as np
import pytest

from embedcache import _wire
from embedcache.client import EpochBatch, LookupResult
from embedcache.v1 import embedcache_pb2 as pb


def dataset_batch(rng, items=300, groups=True):
    m = pb.DatasetBatch(offset=2 ** 40, total=2 ** 41, indices=rng.integers(0, 2 ** 63, items, dtype=np.uint64).tolist())
    for name, dtype, size in (("a", pb.DTYPE_FLOAT32, 4), ("b", pb.DTYPE_BFLOAT16, 2)):
        m.results.add(encoder=name, fingerprint="f" * 32, dim=3, dtype=dtype, found=bytes([0xA5]) * ((items + 7) // 8),
                      embeddings=rng.bytes(items * 3 * size), encoded=7)
    m.labels.found = b"\xff" * ((items + 7) // 8)
    if groups:
        m.labels.groups.group_ids.extend([-1, 0, 127, 128] + rng.integers(-2 ** 62, 2 ** 62, items - 4).tolist())
    else:
        m.labels.pairs.a_index.extend([1, 2])
        m.labels.pairs.b_index.extend([3, 4])
        m.labels.pairs.score.extend([0.5, 1.0])
        m.labels.pairs.subgroup.extend([-1, 9])
    return m


def same(a: EpochBatch, b: EpochBatch):
    assert (a.offset, a.total) == (b.offset, b.total)
    assert np.array_equal(a.indices, b.indices)
    for name in a.embeddings:
        x, y = a[name], b[name]
        assert (x.dtype, x.dim, x.count, x.encoded, bytes(x.raw)) == (y.dtype, y.dim, y.count, y.encoded, bytes(y.raw))
        assert np.array_equal(x.found, y.found)
    assert np.array_equal(a.labels.found, b.labels.found)
    if a.labels.groups is not None:
        assert np.array_equal(a.labels.groups, b.labels.groups)
    else:
        assert np.array_equal(a.labels.pairs.subgroup, b.labels.pairs.subgroup)


@pytest.mark.parametrize("groups", [True, False])
def test_in_place_reading_matches_protobuf_and_shares_the_received_bytes(groups):
    m = dataset_batch(np.random.default_rng(1), groups=groups)
    assert m.labels.WhichOneof("kind") == ("groups" if groups else "pairs")
    raw = m.SerializeToString()
    wire = EpochBatch.from_wire(raw)
    same(wire, EpochBatch.from_message(m))
    start = np.frombuffer(raw, np.uint8).ctypes.data
    for e in wire.embeddings.values():
        assert start <= e.numpy().ctypes.data < start + len(raw)


def test_lookup_responses_are_read_in_place_too():
    m = pb.LookupResponse(request_id=9, count=2)
    m.results.add(encoder="a", dim=2, dtype=pb.DTYPE_FLOAT16, found=b"\x02", embeddings=b"\x01\x02\x03\x04\x05\x06\x07\x08")
    m.labels.groups.group_ids.extend([-7, 2 ** 40])
    r = LookupResult.from_wire(m.SerializeToString())
    assert (r.request_id, r.count, r["a"].found.tolist(), r.labels.groups.tolist()) == (9, 2, [False, True], [-7, 2 ** 40])
    assert r["a"].numpy().tobytes() == b"\x01\x02\x03\x04\x05\x06\x07\x08"


def test_unpacked_integers_fall_back_to_protobuf():
    # Field 3 (indices) written unpacked, one varint per tag: legal protobuf, not what the service writes.
    raw = b"".join(bytes([3 << 3]) + _wire._encode_varint(v) for v in (5, 300, 2 ** 35))
    assert EpochBatch.from_wire(raw).indices.tolist() == [5, 300, 2 ** 35]


def test_packed_varints_decode_every_length():
    values = [0, 1, 127, 128, 16383, 16384, 2 ** 35, 2 ** 63 - 1, 2 ** 64 - 1]
    raw = pb.DatasetBatch(indices=values).SerializeToString()
    _, ranges = _wire.split(raw, _wire.DATASET_BATCH)
    assert _wire.packed_varints(raw, _wire.spans(ranges, 3)).tolist() == values
