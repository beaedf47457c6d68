#!/usr/bin/env python3
"""Makes the TorchScript parity fixtures for EmbedCache's encoder tests, with PyTorch itself.

Run from this directory with Debian 12's PyTorch 1.13 (apt-get install python3-torch):
    /usr/bin/python3 make_testdata.py
It writes (fixed seeds, single thread; the outputs are the same on every run, the .pt archives differ
only in zip metadata, which is why a rerun changes the fingerprints but not expected.json):
  tensor_model.pt   float tensor [N, 3, 8, 8] -> [N, 12]          (conv + linear)
  tensor_model_other_weights.pt   the same architecture with other weights (fingerprint test)
  token_model.pt    (input_ids, attention_mask) int64 [N, L] -> (hidden [N, L, 32], pooled [N, 32])
  vocab.txt         a tiny uncased BERT WordPiece vocabulary made here (nothing downloaded)
  expected.json     inputs, token ids and reference outputs
The .NET tests load the .pt files with TorchSharp/libtorch and must reproduce the outputs within 1e-5.
"""
import json
import math
import unicodedata

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_num_threads(1)

# ---------------------------------------------------------------- vocabulary
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
DIGITS = [str(d) for d in range(10)]
WORDS = ["the", "of", "and", "to", "is", "it", "in", "frozen", "encoder", "cache", "embed", "train",
         "model", "fast", "hello", "world", "serve", "store", "key", "token", "batch", "every", "epoch",
         "once", "read", "text", "vector", "image", "over", "quick", "brown", "fox", "jump", "lazy", "dog"]
SUFFIXES = ["##ed", "##ing", "##ding", "##dings", "##er", "##ly", "##ion"]
VOCAB = SPECIALS + PUNCT + LETTERS + DIGITS + WORDS + ["##" + c for c in LETTERS + DIGITS] + SUFFIXES
assert len(VOCAB) == len(set(VOCAB))
INDEX = {t: i for i, t in enumerate(VOCAB)}
MAX_LENGTH = 16


def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_tokenize(text):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words, current = [], ""
    for ch in text:
        if ch.isspace():
            if current:
                words.append(current)
            current = ""
        elif is_punct(ch):
            if current:
                words.append(current)
            words.append(ch)
            current = ""
        else:
            current += ch
    if current:
        words.append(current)
    return words


def wordpiece(word):
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in INDEX:
                found = piece
                break
            end -= 1
        if found is None:
            return [INDEX["[UNK]"]]
        pieces.append(INDEX[found])
        start = end
    return pieces


def encode(text):
    ids = [i for w in basic_tokenize(text) for i in wordpiece(w)]
    ids = ids[: MAX_LENGTH - 2]  # truncation keeps the start, [SEP] stays last
    return [INDEX["[CLS]"]] + ids + [INDEX["[SEP]"]]


# ---------------------------------------------------------------- models
class TensorModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6 * 4 * 4, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.tanh(self.conv(x)), 2)
        return self.fc(x.flatten(1))


class TokenModel(torch.nn.Module):
    """One BERT-style layer written with plain ops, so it scripts the same on every PyTorch version."""

    def __init__(self, vocab: int, hidden: int = 32, heads: int = 4, positions: int = 64):
        super().__init__()
        self.heads = heads
        self.tok = torch.nn.Embedding(vocab, hidden)
        self.pos = torch.nn.Embedding(positions, hidden)
        self.norm0 = torch.nn.LayerNorm(hidden)
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.out = torch.nn.Linear(hidden, hidden)
        self.norm1 = torch.nn.LayerNorm(hidden)
        self.ff1 = torch.nn.Linear(hidden, 64)
        self.ff2 = torch.nn.Linear(64, hidden)
        self.norm2 = torch.nn.LayerNorm(hidden)
        self.pool = torch.nn.Linear(hidden, hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        n, l = input_ids.shape[0], input_ids.shape[1]
        h = self.tok.embedding_dim
        positions = torch.arange(l, device=input_ids.device)
        x = self.norm0(self.tok(input_ids) + self.pos(positions))
        q, k, v = self.qkv(x).view(n, l, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads)
        scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, float("-inf"))
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, l, h)
        x = self.norm1(x + self.out(a))
        x = self.norm2(x + self.ff2(F.gelu(self.ff1(x))))
        return x, torch.tanh(self.pool(x[:, 0]))


def pad(batch):
    length = max(len(ids) for ids in batch)
    ids = torch.zeros(len(batch), length, dtype=torch.long)
    mask = torch.zeros(len(batch), length, dtype=torch.long)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def floats(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def main():
    with open("vocab.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(VOCAB) + "\n")

    tensor_model = TensorModel().eval()
    token_model = TokenModel(len(VOCAB)).eval()  # created before the second tensor model: same weights as before
    scripted_tensor = torch.jit.script(tensor_model)
    scripted_token = torch.jit.script(token_model)
    scripted_tensor.save("tensor_model.pt")
    torch.jit.script(TensorModel().eval()).save("tensor_model_other_weights.pt")
    scripted_token.save("token_model.pt")

    images = torch.rand(4, 3, 8, 8) * 2 - 1
    sentences = [
        "Hello world!",
        "The frozen encoder caches embeddings.",
        "Every epoch reads the cache once, fast",
        "unknown zebra-words: qqq",
        "the quick brown fox jumped over the lazy dog and the lazy dog slept over every epoch",
    ]
    ids = [encode(s) for s in sentences]
    input_ids, attention_mask = pad(ids)

    with torch.no_grad():
        tensor_out = scripted_tensor(images)
        hidden, _ = scripted_token(input_ids, attention_mask)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        mean_normalized = F.normalize(mean, p=2.0, dim=1)
        cls = hidden[:, 0]

    expected = {
        "generator": f"make_testdata.py with PyTorch {torch.__version__}",
        "tensor": {"shape": list(images.shape), "inputs": floats(images), "dim": 12, "outputs": floats(tensor_out)},
        "token": {
            "max_length": MAX_LENGTH,
            "sentences": sentences,
            "ids": ids,
            "dim": 32,
            "mean_normalized": floats(mean_normalized),
            "cls": floats(cls),
        },
    }
    with open("expected.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
