"""The README's worked example, examples/train_head.py, end to end on the real service."""
import pathlib
import re
import subprocess
import sys

from conftest import ADMIN_KEY, TRAINER_KEY

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_head.py"


def test_train_head_learns_digits_from_cached_random_mlp_embeddings(service, digits, tmp_path):
    out = tmp_path / "head.pt"
    r = subprocess.run([sys.executable, str(EXAMPLE), "--service", service.address, "--api-key", TRAINER_KEY,
                        "--admin-key", ADMIN_KEY, "--dataset", "digits", "--encoder", "random-mlp", "--epochs", "3",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 encoded now, 1797 already cached" in r.stdout, r.stdout
    assert len(re.findall(r"^epoch \d/3: loss", r.stdout, re.M)) == 3, r.stdout
    accuracy = float(re.search(r"final val accuracy ([0-9.]+)", r.stdout).group(1))
    assert accuracy > 0.8, r.stdout
    assert out.is_file()
