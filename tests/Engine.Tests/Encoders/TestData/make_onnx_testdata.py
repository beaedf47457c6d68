"""ONNX parity fixtures, made by Debian's python3-torch (1.13) with torch.onnx.export: nothing downloaded.

Run from this directory with /usr/bin/python3 make_onnx_testdata.py PATH/TO/all-minilm-l6-v2/vocab.txt
(the vocabulary the build extracts into models/all-minilm-l6-v2/ of any output directory). Writes:
  tensor_model.onnx        the TensorModel of make_testdata.py, float32 [N, 3, 8, 8] -> [N, 12], dynamic N
  token_model.onnx         the TokenModel of make_testdata.py, (input_ids, attention_mask) [N, L] -> ([N, L, 32], [N, 32])
  image_model.onnx         a small conv net on ImageNet-normalised RGB [N, 3, 16, 16] -> [N, 8]
  image.png                a 16 x 16 RGB picture for it (written here, no imaging library)
  not_a_model.onnx         text that is not an ONNX graph
  onnx_expected.json       PyTorch's own outputs for all of the above
  wordpiece_expected.json  BERT WordPiece ids (the reference algorithm below) of a fixed sentence set with the
                           all-MiniLM-L6-v2 vocabulary: casing, accents, punctuation, CJK, control characters,
                           over-long words, and truncation at a MaxLength
"""
import json
import struct
import sys
import unicodedata
import zlib

import torch
import torch.nn.functional as F

import make_testdata as base

torch.manual_seed(4321)
torch.set_num_threads(1)


# ---------------------------------------------------------------- BERT tokenization (the published algorithm)
def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text, lower=True):
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        if is_whitespace(ch):
            cleaned.append(" ")
        elif is_cjk(cp):
            cleaned.append(" " + ch + " ")
        else:
            cleaned.append(ch)
    words = []
    for word in "".join(cleaned).split():
        if lower:
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
        current = ""
        for ch in word:
            if is_punctuation(ch):
                if current:
                    words.append(current)
                words.append(ch)
                current = ""
            else:
                current += ch
        if current:
            words.append(current)
    return words


def wordpiece(word, index, max_chars=100):
    if len(word) > max_chars:
        return [index["[UNK]"]]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in index:
                found = piece
                break
            end -= 1
        if found is None:
            return [index["[UNK]"]]
        pieces.append(index[found])
        start = end
    return pieces


def encode(text, index, max_length):
    ids = [i for w in basic_tokenize(text) for i in wordpiece(w, index)]
    ids = ids[: max_length - 2]
    return [index["[CLS]"]] + ids + [index["[SEP]"]]


SENTENCES = [
    "The weather is lovely today.",
    "Hello WORLD, Hello world, hello World!",
    "Café naïve résumé façade Ångström Zürich São Paulo",
    "don't stop—now!!! (really?) 3.14 $5 50% e-mail: a.b@c.org #tag",
    "東京 is in 日本; 北京 is in 中国.",
    "emoji 🙂 and symbols ™ © ≥ ∑ become unknown tokens or pieces",
    "tab\there, a\u00a0no-break space, a\u0000null and a\u200bzero-width space",
    "antidisestablishmentarianism unbelievably tokenization preprocessing",
    "x" * 120 + " after a word over a hundred characters",
    "   leading and trailing spaces   ",
    "Numbers 1234567 and 12,345.67 and 3rd 21st",
    "A long sentence that runs past the maximum length of sixteen tokens, so it is truncated and [SEP] stays last.",
]
MAX_LENGTH = 16


# ---------------------------------------------------------------- models
class ImageModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.flatten(1))


def write_png(path, pixels):
    """pixels: [H][W][3] ints 0..255 -> an 8-bit RGB PNG (no filter, zlib)."""
    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in pixels)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def export(model, args, path, inputs, outputs, dynamic):
    torch.onnx.export(model, args, path, input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
                      opset_version=14, do_constant_folding=True)


def main():
    vocab_path = sys.argv[1]
    with open(vocab_path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f]
    index = {t: i for i, t in enumerate(vocab)}

    torch.manual_seed(1234)  # as make_testdata.py, though the weights need not match the TorchScript files
    tensor_model = base.TensorModel().eval()
    token_model = base.TokenModel(len(base.VOCAB)).eval()
    image_model = ImageModel().eval()

    images = torch.rand(3, 3, 8, 8) * 2 - 1
    export(tensor_model, (images,), "tensor_model.onnx", ["pixels"], ["embedding"], {"pixels": {0: "n"}, "embedding": {0: "n"}})

    token_ids = [base.encode(s) for s in ["Hello world!", "The frozen encoder caches embeddings.", "Every epoch reads the cache once, fast"]]
    input_ids, attention_mask = base.pad(token_ids)
    export(token_model, (input_ids, attention_mask), "token_model.onnx", ["input_ids", "attention_mask"], ["hidden", "pooled"],
           {"input_ids": {0: "n", 1: "l"}, "attention_mask": {0: "n", 1: "l"}, "hidden": {0: "n", 1: "l"}, "pooled": {0: "n"}})

    g = torch.Generator().manual_seed(7)
    pixels = torch.randint(0, 256, (16, 16, 3), generator=g, dtype=torch.int64)
    write_png("image.png", pixels.tolist())
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    image_input = ((pixels.permute(2, 0, 1).float() / 255.0 - mean) / std).unsqueeze(0)
    export(image_model, (image_input,), "image_model.onnx", ["image"], ["features"], {"image": {0: "n"}, "features": {0: "n"}})

    with open("not_a_model.onnx", "w", encoding="utf-8") as f:
        f.write("this is a text file, not an ONNX graph\n")

    with torch.no_grad():
        tensor_out = tensor_model(images)
        hidden, _ = token_model(input_ids, attention_mask)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean_normalized = F.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1), p=2.0, dim=1)
        image_out = image_model(image_input)

    expected = {
        "generator": f"make_onnx_testdata.py with PyTorch {torch.__version__}, torch.onnx.export opset 14",
        "tensor": {"shape": [3, 8, 8], "inputs": base.floats(images), "dim": 12, "outputs": base.floats(tensor_out)},
        "token": {"ids": token_ids, "dim": 32, "mean_normalized": base.floats(mean_normalized)},
        "image": {"shape": [3, 16, 16], "dim": 8, "outputs": base.floats(image_out)},
    }
    with open("onnx_expected.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    wordpiece_expected = {
        "generator": "make_onnx_testdata.py: BERT basic tokenization (clean, CJK split, lower-case, strip accents, punctuation split) + greedy WordPiece, max 100 chars per word",
        "vocabulary": "all-minilm-l6-v2/vocab.txt",
        "max_length": MAX_LENGTH,
        "sentences": SENTENCES,
        "ids": [encode(s, index, 512) for s in SENTENCES],
        "ids_truncated": [encode(s, index, MAX_LENGTH) for s in SENTENCES],
    }
    with open("wordpiece_expected.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(wordpiece_expected, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
