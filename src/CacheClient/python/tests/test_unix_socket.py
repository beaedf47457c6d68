"""The client over the service's Unix domain socket (EmbedCache:UnixSocketPath): the same answers as over TCP."""
import os
import stat

import pytest

import embedcache
from embedcache import errors, keys

from conftest import TRAINER_KEY


def test_unix_socket_serves_the_same_bytes_as_tcp_with_the_same_keys(service, client, digits):
    assert service.unix_address is not None and service.unix_address.startswith("unix:///"), service.output
    path = service.unix_address[len("unix://"):]
    mode = os.lstat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600

    with embedcache.Client(service.unix_address, api_key=TRAINER_KEY) as local:
        assert [(e.name, e.fingerprint) for e in local.encoders()] == [(e.name, e.fingerprint) for e in client.encoders()]

        k = keys.positional("digits", "val", [0, 5, 17])
        over_socket = local.lookup("random-mlp", k, include_labels=True)
        over_tcp = client.lookup("random-mlp", k, include_labels=True)
        assert over_socket["random-mlp"].found.all()
        assert bytes(over_socket["random-mlp"].raw) == bytes(over_tcp["random-mlp"].raw)

        epoch = dict(batch_size=300, shuffle=True, seed=5, epoch=1, include_labels=True)
        socket_batches = list(local.stream_epoch("digits", "train", "random-mlp", **epoch))
        tcp_batches = list(client.stream_epoch("digits", "train", "random-mlp", **epoch))
        assert [bytes(b["random-mlp"].raw) for b in socket_batches] == [bytes(b["random-mlp"].raw) for b in tcp_batches]
        assert [b.indices.tobytes() for b in socket_batches] == [b.indices.tobytes() for b in tcp_batches]

    # The socket's file mode lets this user in; the API keys still apply.
    with embedcache.Client(service.unix_address, api_key="", max_attempts=1) as anonymous:
        with pytest.raises(errors.Unauthenticated):
            anonymous.encoders()
