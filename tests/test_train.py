import json
import subprocess
import sys

import pytest
import torch

from course_lib import train as T
from course_lib.models import GPT, GPTConfig, sha256_file


def test_get_batch_targets_are_shifted_inputs():
    tokens = torch.arange(100)
    g = torch.Generator().manual_seed(0)
    x, y = T.get_batch(tokens, 4, 10, g)
    assert x.shape == y.shape == (4, 10)
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="more than block_size"):
        T.get_batch(torch.arange(5), 2, 10)
    with pytest.raises(ValueError, match="1-D"):
        T.get_batch(torch.zeros(3, 30, dtype=torch.long), 2, 10)


def test_lr_schedule_warms_up_then_decays():
    p = T.get_preset("tiny-gpt")
    lrs = [T.lr_at(s, p) for s in range(p.steps)]
    assert lrs[0] < lrs[p.warmup - 1] == pytest.approx(p.lr)
    assert lrs[-1] == pytest.approx(0.1 * p.lr, rel=0.02)
    assert all(a >= b for a, b in zip(lrs[p.warmup:], lrs[p.warmup + 1:]))


def test_training_is_deterministic(tmp_path):
    """Same preset and seed: the same loss to the last digit and the same weights, bit for bit."""
    a = T.run_preset("micro-gpt", tmp_path / "a", progress=False)
    b = T.run_preset("micro-gpt", tmp_path / "b", progress=False)
    assert a["val_loss"] == b["val_loss"]
    assert a["sha256"] == b["sha256"]
    assert a["val_loss"] < a["unigram_val_loss"] + 1.0   # it trained (30 steps: a rough bar)


def test_training_lowers_the_loss():
    preset = T.get_preset("micro-gpt")
    tok, train_ids, val_ids = T.prepare_data(preset)
    torch.manual_seed(0)
    model = GPT(preset.config)
    before = T.evaluate(model, val_ids)
    history = T.train(model, train_ids, preset, val_ids, progress=False)
    after = T.evaluate(model, val_ids)
    assert after < before - 1.0
    assert history["val_step"][-1] == preset.steps - 1


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, d_model=16)
    a, b = GPT(cfg), GPT(cfg)
    sha = T.save_checkpoint(a, tmp_path / "m.safetensors")
    assert sha == sha256_file(tmp_path / "m.safetensors")
    T.load_checkpoint(b, tmp_path / "m.safetensors")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(ValueError, match="no checkpoint"):
        T.load_checkpoint(b, tmp_path / "nope.safetensors")
    # safetensors files start with a JSON header, never a pickle
    raw = (tmp_path / "m.safetensors").read_bytes()
    assert raw[8:9] == b"{"


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'gpt-4'"):
        T.get_preset("gpt-4")
    r = subprocess.run([sys.executable, "-m", "course_lib.train", "--preset", "gpt-4"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "invalid choice: 'gpt-4'" in r.stderr and "Traceback" not in r.stderr


def test_shipped_tiny_gpt_regenerates_bit_for_bit(tmp_path):
    """`python -m course_lib.train --preset tiny-gpt` gives the shipped weights exactly."""
    from course_lib.models import WEIGHTS_DIR

    shipped = json.loads((WEIGHTS_DIR / "tiny-gpt.json").read_text())
    r = subprocess.run([sys.executable, "-m", "course_lib.train", "--preset", "tiny-gpt",
                        "--out", str(tmp_path), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    again = json.loads((tmp_path / "tiny-gpt.json").read_text())
    assert again["sha256"] == shipped["sha256"]
    assert (tmp_path / "tiny-gpt.tokenizer.json").read_text() == \
        (WEIGHTS_DIR / "tiny-gpt.tokenizer.json").read_text()
