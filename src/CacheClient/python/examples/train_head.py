"""Train a classification head in plain PyTorch on embeddings cached by EmbedCache.

The training loop never reads the raw dataset and never runs the encoder: the service prewarms the
split once (a job; a second run finds everything cached), then every epoch streams the cached
embeddings and labels in a fresh order (`set_epoch`), through an ordinary DataLoader.

    python examples/train_head.py --service 127.0.0.1:50051 --dataset fortunes --encoder all-minilm-l6-v2 --epochs 20

fortunes (short English texts, ten topics) and all-minilm-l6-v2 (sentence-transformers' pretrained text
encoder) ship with the service, so this runs on a fresh service; the first run encodes the 1,959 sentences
once (a few seconds to a minute), every later run and every epoch reads them from the cache.

Any dataset with group labels (a class id per item) and any encoder that matches its input work:
`--dataset NAME --encoder NAME`. Keys: `--api-key` (trainer) and `--admin-key` (prewarm), or
$EMBEDCACHE_API_KEY. Under `torchrun` the dataset shards each epoch across the ranks by itself.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import embedcache


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--service", help="gRPC address (default $EMBEDCACHE_SERVICE or 127.0.0.1:50051)")
    p.add_argument("--api-key", help="trainer API key (default $EMBEDCACHE_API_KEY)")
    p.add_argument("--admin-key", help="admin API key for the prewarm (default: --api-key)")
    p.add_argument("--dataset", default="fortunes")
    p.add_argument("--encoder", default="all-minilm-l6-v2")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-prewarm", action="store_true", help="the splits are cached already")
    p.add_argument("--out", help="save the trained head's state_dict here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    options = {"api_key": args.api_key} if args.api_key else {}

    if not args.no_prewarm:
        with embedcache.Client(args.service, api_key=args.admin_key or args.api_key) as admin:
            for progress in admin.prewarm(args.dataset, splits=[args.train_split, args.val_split], encoders=[args.encoder]):
                pass  # a tqdm bar on a terminal
        print(f"cached: {progress.total} embeddings ({progress.encoded} encoded now, {progress.skipped} already cached)")

    def split(name, shuffle, batch_size):
        return embedcache.EmbedCacheDataset(args.dataset, name, args.encoder, service=args.service, client_options=options,
                                            batch_size=batch_size, shuffle=shuffle, seed=args.seed, dtype=torch.float32)

    train, val = split(args.train_split, True, args.batch_size), split(args.val_split, False, 1024)
    val_batches = list(val)
    val_x = torch.cat([b["embeddings"] for b in val_batches])
    val_y = torch.cat([b["labels"] for b in val_batches])
    classes = int(max(val_y.max(), max(b["labels"].max() for b in train))) + 1
    head = nn.Sequential(nn.Linear(val_x.shape[1], args.hidden), nn.ReLU(), nn.Linear(args.hidden, classes))
    optimizer = torch.optim.Adam(head.parameters(), lr=args.lr)
    print(f"{args.dataset}/{args.encoder}: dim {val_x.shape[1]}, {classes} classes, {len(val_y)} validation items")

    accuracy = 0.0
    for epoch in range(args.epochs):
        train.set_epoch(epoch)
        head.train()
        started, items, total_loss = time.perf_counter(), 0, 0.0
        for batch in DataLoader(train, batch_size=None, num_workers=args.workers):
            x, y = batch["embeddings"], batch["labels"]
            loss = F.cross_entropy(head(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            items += len(y)
            total_loss += loss.item() * len(y)
        seconds = time.perf_counter() - started
        head.eval()
        with torch.no_grad():
            accuracy = (head(val_x).argmax(1) == val_y).float().mean().item()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total_loss / items:.4f}  val accuracy {accuracy:.4f}  "
              f"{items} items in {seconds:.2f}s ({items / seconds:,.0f} items/s)")

    if args.out:
        torch.save(head.state_dict(), args.out)
        print(f"wrote {args.out}")
    print(f"final val accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
