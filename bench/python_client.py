"""Cached-epoch throughput of the Python client against the .NET client, in one run (see python-client.sh).

Starts the built service on free loopback ports and a Unix socket with a generated dataset of 64-float vectors
and two random-mlp encoders (64 -> 384; float32 `e32`, float16 `e16`, Cpu tier), prewarms both, then measures
shuffled epochs with labels, the paths taking turns (rounds x seconds each). Over loopback TCP (StreamDataset):

  python stream_epoch   embedcache.Client.stream_epoch, each batch's rows taken as a NumPy view
  python dataset        EmbedCacheDataset through DataLoader(batch_size=None), rows as torch views
  .NET client           tests/ClientProbe `bench`: EmbedCacheClient.StreamEpochPooledAsync, as the trainer reads

and over the Unix socket with the shared-memory ring (StreamDatasetShared):

  python shared memory              stream_epoch on the unix: address, rows as NumPy views on the ring
  python shared memory, rows read   the same, each batch's first column summed (every page of the rows touched)
  python dataset shared memory      EmbedCacheDataset on the unix: address
  .NET shared memory                the .NET client on the unix:// address (SharedMemory Require)

Neither the .NET client nor the rows-as-views Python paths read the rows they are handed (a view costs
nothing until it is read); the "rows read" line shows what reading them adds on the shared-memory path, where
the pages are faulted in by the reader (over gRPC they were already written into the process by the receive).

Prints a Markdown section for bench/RESULTS.md.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from torch.utils.data import DataLoader

import embedcache

DIM = 384
LISTENING = re.compile(r"listening: gRPC (?P<grpc>https?://\S+?)/?, HTTP (?:\S+?)/?(?:, gRPC (?P<unix>unix:\S+))?$")


def write_dataset(directory: pathlib.Path, items: int) -> None:
    directory.mkdir(parents=True)
    (directory / "dataset.json").write_text(json.dumps({
        "format": "csv", "splits": {"train": "train.csv"},
        "features": {"kind": "vector", "columns": "*", "shape": [64]}, "labels": {"kind": "group", "field": "label"}}))
    rng = np.random.default_rng(11)
    x = rng.random((items, 64), dtype=np.float32)
    labels = rng.integers(0, 100, items)
    with open(directory / "train.csv", "w") as f:
        f.write(",".join([f"x{i}" for i in range(64)] + ["label"]) + "\n")
        np.savetxt(f, np.column_stack([x, labels]), delimiter=",", fmt=["%.6f"] * 64 + ["%d"])


def start_service(dll: pathlib.Path, root: pathlib.Path):
    args = ["dotnet", str(dll), "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", f"--EmbedCache:SaveDir={root / 'save'}",
            f"--EmbedCache:DataRoot={root / 'data'}", "--EmbedCache:Datasets:vec=vec", "--EmbedCache:Store:DefaultTier=Cpu",
            "--EmbedCache:Store:CheckpointIntervalSeconds=0", f"--EmbedCache:UnixSocketPath={root / 'ec.sock'}"]
    for name, dtype in (("e32", "Float32"), ("e16", "Float16")):
        args += [f"--EmbedCache:Encoders:{name}:Kind=random-mlp", f"--EmbedCache:Encoders:{name}:Dim={DIM}",
                 f"--EmbedCache:Encoders:{name}:DType={dtype}", f"--EmbedCache:Encoders:{name}:BatchSize=256"]
    process = subprocess.Popen(args, cwd=dll.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: [lines.append(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        # The ports open at once; the service serves from its "EmbedCache ready" line on.
        snapshot = list(lines)
        for line in snapshot if any("EmbedCache ready" in l for l in snapshot) else []:
            m = LISTENING.search(line)
            if m:
                return process, m.group("grpc"), m.group("unix")
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    sys.exit("the service did not start:\n" + "".join(lines))


def python_epochs(client, encoder, batch_size, seconds, epoch0, read=False):
    """Whole shuffled epochs until `seconds` have passed: (items, seconds, client CPU seconds)."""
    started, cpu, items, epoch = time.perf_counter(), time.process_time(), 0, epoch0
    while time.perf_counter() - started < seconds:
        for batch in client.stream_epoch("vec", "train", encoder, batch_size=batch_size, shuffle=True, epoch=epoch,
                                         include_labels=True):
            rows = batch[encoder].numpy()
            if read:
                rows[:, 0].sum()  # a row is 768 or 1,536 bytes: this reads every page of the batch
            items += rows.shape[0]
        epoch += 1
    return items, time.perf_counter() - started, time.process_time() - cpu


def dataset_epochs(address, encoder, batch_size, seconds, epoch0, shared_memory="auto"):
    ds = embedcache.EmbedCacheDataset("vec", "train", encoder, service=address, batch_size=batch_size, labels=True,
                                      client_options={"shared_memory": shared_memory})
    started, cpu, items, epoch = time.perf_counter(), time.process_time(), 0, epoch0
    while time.perf_counter() - started < seconds:
        ds.set_epoch(epoch)
        for batch in DataLoader(ds, batch_size=None):
            items += batch["embeddings"].shape[0]
        epoch += 1
    return items, time.perf_counter() - started, time.process_time() - cpu


def dotnet_epochs(probe, address, encoder, batch_size, seconds, shared="off"):
    out = subprocess.run(["dotnet", str(probe), "bench", "--service", address, "--shared", shared, "--dataset", "vec", "--split", "train",
                          "--encoder", encoder, "--batch-size", str(batch_size), "--shuffle", "--labels", "--seconds", str(seconds),
                          "--warmup", "2"], capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["items"], r["seconds"], r["cpu_seconds"]


def machine() -> str:
    os_name = platform.platform()
    try:
        os_name = next(l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    import grpc
    import torch
    return (f"{os.cpu_count()} cores, {mem:.0f} GiB, {os_name}, Python {platform.python_version()} (Debian), "
            f"grpcio {grpc.__version__}, numpy {np.__version__}, torch {torch.__version__.split('+')[0]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--service-dll", required=True)
    p.add_argument("--probe-dll", required=True)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--seconds", type=float, default=6)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    args.service_dll, args.probe_dll = (pathlib.Path(a).resolve() for a in (args.service_dll, args.probe_dll))
    root = pathlib.Path(tempfile.mkdtemp(prefix="embedcache-pybench-"))
    service = None
    try:
        write_dataset(root / "data" / "vec", args.items)
        service, grpc_uri, unix_uri = start_service(args.service_dll, root)
        if unix_uri is None:
            sys.exit("the service did not name its Unix socket in its listening line")
        address = grpc_uri.split("://", 1)[1]
        load_start = os.getloadavg()[0]
        started = time.perf_counter()
        with embedcache.Client(address) as client, embedcache.Client(unix_uri, shared_memory="require") as local:
            for encoder in ("e16", "e32"):
                last = list(client.prewarm("vec", encoders=[encoder], batch_size=256, progress_bar=False))[-1]
                assert last.state == "completed", last
            for encoder in ("e32", "e16"):  # warm both paths up once (JIT, HTTP/2 windows, page cache)
                python_epochs(client, encoder, args.batch_size, 2, 1000)
                python_epochs(local, encoder, args.batch_size, 2, 1000)

            totals = {}
            for r in range(args.rounds):
                for encoder in ("e32", "e16"):
                    runs = {
                        "python stream_epoch": lambda: python_epochs(client, encoder, args.batch_size, args.seconds, 100 * r),
                        "python dataset": lambda: dataset_epochs(address, encoder, args.batch_size, args.seconds, 100 * r + 50),
                        ".NET client": lambda: dotnet_epochs(args.probe_dll, grpc_uri, encoder, args.batch_size, args.seconds),
                        "python shared memory": lambda: python_epochs(local, encoder, args.batch_size, args.seconds, 100 * r + 20),
                        "python shared memory, rows read":
                            lambda: python_epochs(local, encoder, args.batch_size, args.seconds, 100 * r + 30, read=True),
                        "python dataset shared memory":
                            lambda: dataset_epochs(unix_uri, encoder, args.batch_size, args.seconds, 100 * r + 70, "require"),
                        ".NET shared memory":
                            lambda: dotnet_epochs(args.probe_dll, unix_uri, encoder, args.batch_size, args.seconds, "require"),
                    }
                    for path, run in runs.items():
                        items, seconds, cpu = run()
                        t = totals.setdefault((path, encoder), [0, 0.0, 0.0])
                        t[0] += items
                        t[1] += seconds
                        t[2] += cpu
                        print(f"round {r + 1} {encoder} {path}: {items / seconds:,.0f} emb/s, "
                              f"{cpu / items * 1e6:.2f} client CPU-µs/emb", file=sys.stderr)
            privatized = local.shared_memory_stats["privatized"]
        load_end = os.getloadavg()[0]
        elapsed = time.perf_counter() - started
    finally:
        if service is not None:
            service.terminate()
            service.wait(30)
        shutil.rmtree(root, ignore_errors=True)

    rate = {k: v[0] / v[1] for k, v in totals.items()}
    cpu_us = {k: v[2] / v[0] * 1e6 for k, v in totals.items()}
    today = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    print(f"### {today} Python client vs .NET client, cached epochs (bench/python-client.sh)\n")
    print(f"Machine: {machine()}; load average {load_start:.1f} at start, {load_end:.1f} at end.")
    print(f"Workload: {args.items:,} items, random-mlp 64 → {DIM}, Cpu tier; shuffled epochs with group labels in batches of "
          f"{args.batch_size}: StreamDataset over loopback TCP, StreamDatasetShared over the Unix socket (the service's "
          f"default 16 MiB ring); {args.rounds} rounds × {args.seconds:g} s per path, the paths taking turns; "
          f"{elapsed:.0f} s from the prewarm to the last round. Ring batches the Python client had to copy (views kept): {privatized}.\n")
    print("| path | float32 emb/s | MB/s | client CPU-µs/emb | float16 emb/s | MB/s | client CPU-µs/emb | ÷ .NET emb/s, same transport (f32 / f16) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in ("python stream_epoch", "python dataset", ".NET client", "python shared memory", "python shared memory, rows read",
                 "python dataset shared memory", ".NET shared memory"):
        r32, r16 = rate[(path, "e32")], rate[(path, "e16")]
        dotnet = ".NET shared memory" if "shared" in path else ".NET client"
        ratio = f"{r32 / rate[(dotnet, 'e32')]:.2f} / {r16 / rate[(dotnet, 'e16')]:.2f}"
        print(f"| {path} | {r32:,.0f} | {r32 * DIM * 4 / 1e6:,.0f} | {cpu_us[(path, 'e32')]:.2f} | {r16:,.0f} | "
              f"{r16 * DIM * 2 / 1e6:,.0f} | {cpu_us[(path, 'e16')]:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
