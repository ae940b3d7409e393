import json
import shutil
from dataclasses import replace

import pytest
import torch

from course_lib.models import (
    GPT,
    EncoderDecoder,
    EncoderModel,
    GPTConfig,
    config_dict,
    load_pretrained,
    mlm_mask,
    sample_next,
    sinusoidal_positions,
)

SMALL = dict(vocab_size=50, block_size=16, n_layer=2, n_head=4, d_model=32)


def test_gpt_shapes_and_loss():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL))
    idx = torch.randint(0, 50, (3, 10))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 10, 50)
    # an untrained model predicts close to uniform: loss near ln(vocab)
    assert abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.3


def test_gpt_is_causal():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    a = torch.randint(0, 50, (1, 12))
    b = a.clone()
    b[0, 8:] = (b[0, 8:] + 1) % 50                        # change only the future
    la, _ = model(a)
    lb, _ = model(b)
    torch.testing.assert_close(la[:, :8], lb[:, :8])
    assert not torch.allclose(la[:, 8:], lb[:, 8:])


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal"])
def test_cached_generation_equals_uncached(n_kv_head, pos_emb):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, n_kv_head=n_kv_head, pos_emb=pos_emb)).eval()
    prompt = torch.randint(0, 50, (2, 5))
    # greedy, and past block_size (16) so the sliding window is exercised
    a = model.generate(prompt, 20, temperature=0, use_cache=True)
    b = model.generate(prompt, 20, temperature=0, use_cache=False)
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    s1 = model.generate(prompt, 8, temperature=1.0, top_k=10, use_cache=True, generator=g1)
    s2 = model.generate(prompt, 8, temperature=1.0, top_k=10, use_cache=False, generator=g2)
    assert torch.equal(s1, s2)


def test_sample_next_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    assert sample_next(logits, temperature=0).item() == 0
    g = torch.Generator().manual_seed(0)
    picks = {sample_next(logits, top_k=2, generator=g).item() for _ in range(200)}
    assert picks == {0, 1}
    # top_p = 0.5: token 0 alone has probability 0.64 > 0.5, so only it survives
    picks = {sample_next(logits, top_p=0.5, generator=g).item() for _ in range(100)}
    assert picks == {0}
    picks = {sample_next(logits, top_p=0.9, generator=g).item() for _ in range(300)}
    assert picks == {0, 1, 2}      # 0.64 + 0.24 = 0.88 < 0.9, so token 2 is needed too
    for bad in (dict(temperature=-1), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5)):
        with pytest.raises(ValueError):
            sample_next(logits, **bad)


def test_sinusoidal_positions():
    t = sinusoidal_positions(10, 8)
    assert t.shape == (10, 8)
    torch.testing.assert_close(t[0], torch.tensor([0.0, 1.0] * 4))
    torch.testing.assert_close(t[3, 0], torch.sin(torch.tensor(3.0)))


def test_encoder_is_bidirectional_and_padding_is_ignored():
    torch.manual_seed(0)
    enc = EncoderModel(GPTConfig(**SMALL), n_classes=3).eval()
    a = torch.randint(0, 50, (1, 8))
    b = a.clone()
    b[0, 7] = (b[0, 7] + 1) % 50
    assert not torch.allclose(enc(a)[0][:, 0], enc(b)[0][:, 0])  # the first sees the last
    pad = torch.tensor([[True] * 6 + [False] * 2])
    la, _ = enc.classify(a, pad)
    lb, _ = enc.classify(b, pad)
    torch.testing.assert_close(la, lb)                              # changed token is padding
    logits, loss = enc.classify(a, pad, labels=torch.tensor([2]))
    assert logits.shape == (1, 3) and loss.item() > 0
    with pytest.raises(ValueError, match="n_classes"):
        EncoderModel(GPTConfig(**SMALL)).classify(a)


def test_mlm_mask_80_10_10():
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(5, 100, (200, 100), generator=g)
    inputs, targets = mlm_mask(idx, mask_id=0, vocab_size=100, prob=0.15, generator=g)
    chosen = targets != -100
    frac = chosen.float().mean().item()
    assert 0.14 < frac < 0.16
    assert torch.equal(targets[chosen], idx[chosen])
    masked = (inputs[chosen] == 0).float().mean().item()
    kept = (inputs[chosen] == idx[chosen]).float().mean().item()
    assert 0.78 < masked < 0.82 and 0.09 < kept < 0.12      # kept includes random == original
    assert torch.equal(inputs[~chosen], idx[~chosen])
    with pytest.raises(ValueError, match="prob"):
        mlm_mask(idx, 0, 100, prob=1.5)


def test_encoder_decoder_shapes_and_generate():
    torch.manual_seed(0)
    model = EncoderDecoder(GPTConfig(**SMALL)).eval()
    src = torch.randint(3, 50, (2, 7))
    tgt = torch.randint(3, 50, (2, 5))
    logits, loss = model(src, tgt, targets=tgt)
    assert logits.shape == (2, 5, 50) and loss.item() > 0
    out = model.generate(src, bos_id=1, eos_id=2, max_new_tokens=6)
    assert out.shape[0] == 2 and out.shape[1] <= 7 and (out[:, 0] == 1).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(SMALL, d_model=30), "must divide d_model"),
    (dict(SMALL, n_kv_head=3), "must divide n_heads"),
    (dict(SMALL, vocab_size=0), "vocab_size"),
    (dict(SMALL, pos_emb="rope"), "pos_emb"),
    (dict(SMALL, dropout=1.0), "dropout"),
])
def test_config_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**kwargs)


def test_model_bad_input():
    model = GPT(GPTConfig(**SMALL))
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        model(torch.tensor([[0, 50]]))


def test_load_pretrained_tiny_gpt():
    model = load_pretrained("tiny-gpt")
    assert not model.training
    assert model.meta["n_params"] == sum(p.numel() for p in model.parameters())
    tok = model.tokenizer
    prompt = torch.tensor([tok.encode("Once upon a time, there was")])
    text = tok.decode(model.generate(prompt, 30, temperature=0)[0].tolist())
    assert text.startswith("Once upon a time, there was")
    assert " named " in text                   # it learned the grammar's first sentence
    assert model.meta["val_loss"] < 0.6 * model.meta["unigram_val_loss"]


def test_load_pretrained_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        load_pretrained("gpt-5")
    with pytest.raises(ValueError, match="missing.*python -m course_lib.train --preset tiny-gpt"):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)
    from course_lib.models import WEIGHTS_DIR
    for f in WEIGHTS_DIR.glob("tiny-gpt*"):
        shutil.copy(f, tmp_path / f.name)
    load_pretrained("tiny-gpt", weights_dir=tmp_path)          # an intact copy loads
    w = tmp_path / "tiny-gpt.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF                                             # flip one byte
    w.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted.*--preset tiny-gpt"):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)
    meta = json.loads((tmp_path / "tiny-gpt.json").read_text())
    assert len(meta["sha256"]) == 64


# ------------------------------------------------------------------ the record is verified
def _copy_shipped(tmp_path, name="tiny-gpt"):
    from course_lib.models import WEIGHTS_DIR

    for f in WEIGHTS_DIR.glob(f"{name}.*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / f"{name}.json"


def _edit_record(path, edit, fix_checksum=False):
    from course_lib.checkpoint import record_checksum

    meta = json.loads(path.read_text())
    edit(meta)
    if fix_checksum:
        meta["record_sha256"] = record_checksum(meta)
    path.write_text(json.dumps(meta))


REGEN = "regenerate it with: python -m course_lib.train --preset tiny-gpt"


def test_record_with_more_heads_is_refused(tmp_path):
    """n_head 4 -> 8 leaves every tensor shape the same: before, it loaded and changed the
    outputs; the record checksum refuses it."""
    record = _copy_shipped(tmp_path)
    _edit_record(record, lambda m: m["config"].update(n_head=8))
    with pytest.raises(ValueError, match="edited after training.*" + REGEN):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)


def test_record_with_swapped_merges_is_refused(tmp_path):
    _copy_shipped(tmp_path)
    path = tmp_path / "tiny-gpt.tokenizer.json"
    tok = json.loads(path.read_text())
    tok["merges"][0], tok["merges"][1] = tok["merges"][1], tok["merges"][0]
    path.write_text(json.dumps(tok))
    with pytest.raises(ValueError, match=r"tokenizer.json is corrupted.*" + REGEN):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)


@pytest.mark.parametrize("key, value", [("vocab_size", 10**12), ("n_layer", 0),
                                        ("d_model", 2.5), ("n_head", True)])
def test_record_with_absurd_sizes_is_refused_before_building(tmp_path, key, value):
    record = _copy_shipped(tmp_path)
    _edit_record(record, lambda m: m["config"].update({key: value}), fix_checksum=True)
    with pytest.raises(ValueError, match=f"{key}.*{REGEN}"):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)


@pytest.mark.parametrize("edit", [lambda m: m.pop("sha256"), lambda m: m.update(sha256=None),
                                  lambda m: m.update(sha256="abc")])
def test_record_without_a_valid_sha256_is_refused(tmp_path, edit):
    record = _copy_shipped(tmp_path)
    _edit_record(record, edit)
    with pytest.raises(ValueError, match=f"sha256.*{REGEN}"):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)


def test_record_whose_config_does_not_match_the_weights_is_refused(tmp_path):
    """Even with a recomputed checksum, the config must build the header's exact shapes."""
    record = _copy_shipped(tmp_path)
    _edit_record(record, lambda m: m["config"].update(d_ff=256), fix_checksum=True)
    with pytest.raises(ValueError, match=r"mlp.fc1.weight has shape \(512, 128\).*\(256, 128\)"):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)
    _edit_record(record, lambda m: m["config"].update(d_ff=None, n_layer=3), fix_checksum=True)
    with pytest.raises(ValueError, match="unexpected.*blocks.3"):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)
    _edit_record(record, lambda m: m["config"].update(n_layer=4, rope=True), fix_checksum=True)
    with pytest.raises(ValueError, match="unknown keys.*rope"):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)
    record.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_pretrained("tiny-gpt", weights_dir=tmp_path)


def test_safetensors_header_is_read_without_the_tensors(tmp_path):
    from course_lib.checkpoint import safetensors_header
    from course_lib.models import WEIGHTS_DIR

    header = safetensors_header(WEIGHTS_DIR / "tiny-gpt.safetensors")
    assert header["lm_head.weight"] == ("F32", (512, 128))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((10**15).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header length"):
        safetensors_header(bad)


# ---------------------------------------------------------------- one name for head counts
def test_config_head_counts_have_one_name_and_old_records_load():
    new = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_heads=4, d_model=32,
                    n_kv_heads=2)
    old = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, d_model=32, n_kv_head=2)
    assert new == old and old.n_head == old.n_heads == 4 and old.n_kv_head == 2
    assert "n_heads" in config_dict(new) and "n_head" not in config_dict(new)
    assert replace(new, n_kv_head=1).n_kv_heads == 1           # chapter code still works
    assert GPTConfig.from_dict({"n_head": 2, "d_model": 8}).n_heads == 2
    model = load_pretrained("tiny-gpt")                         # its record says "n_head"
    assert "n_head" in model.meta["config"] and model.config.n_heads == 4
    assert model.blocks[0].attn.n_heads == 4


# -------------------------------------------------------------------------------- bad input
def _small():
    torch.manual_seed(0)
    return GPT(GPTConfig(**SMALL)).eval()


@pytest.mark.parametrize("call, error, match", [
    (lambda m: m.generate(torch.zeros(1, 0, dtype=torch.long), 3), ValueError, "idx is empty"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 2.5), TypeError,
     "max_new_tokens must be an int"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), -1), ValueError,
     "max_new_tokens must be >= 0"),
    (lambda m: m.generate(torch.zeros(2), 3), TypeError, "idx must be an integer tensor"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 3, temperature=float("nan")),
     ValueError, "temperature must be finite"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 3, top_k=2.5), TypeError,
     "top_k must be an int"),
    (lambda m: m(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 5, dtype=torch.long)),
     ValueError, "targets"),
    (lambda m: m(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4)), TypeError,
     "targets must be an integer tensor"),
])
def test_gpt_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(_small())


@pytest.mark.parametrize("call, error, match", [
    (lambda: sample_next(torch.tensor([[float("nan"), 1.0]])), ValueError, "NaN"),
    (lambda: sample_next(torch.zeros(1, 0)), ValueError, "empty vocab"),
    (lambda: sample_next(torch.zeros(3)), ValueError, "logits must have 2 dims"),
    (lambda: sample_next(torch.zeros(1, 3), top_p=float("nan")), ValueError, "top_p"),
    (lambda: sinusoidal_positions(0, 8), ValueError, "n must be >= 1"),
    (lambda: sinusoidal_positions(4, 2.5), TypeError, "d must be an int"),
    (lambda: mlm_mask(torch.zeros(2, 3, dtype=torch.long), 1.5, 10), TypeError, "mask_id"),
    (lambda: mlm_mask(torch.zeros(2, 3, dtype=torch.long), -1, 10), ValueError, "mask_id"),
    (lambda: mlm_mask(torch.zeros(2, 3), 1, 10), TypeError, "idx must be an integer"),
    (lambda: mlm_mask(torch.zeros(2, 3, dtype=torch.long), 1, 10, prob=float("nan")),
     ValueError, "prob"),
    (lambda: GPTConfig(**{**SMALL, "n_kv_head": 2.0}), ValueError, "n_kv_heads"),
    (lambda: GPTConfig(**{**SMALL, "bias": "yes"}), TypeError, "bias"),
    (lambda: GPTConfig(**{**SMALL, "vocab_size": True}), ValueError, "vocab_size"),
])
def test_model_functions_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_encoder_families_bad_input():
    torch.manual_seed(0)
    enc = EncoderModel(GPTConfig(**SMALL), n_classes=3)
    ids = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="pad_mask must be bool"):
        enc(ids, pad_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="pad_mask must be bool"):
        enc(ids, pad_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="labels must be"):
        enc.classify(ids, labels=torch.tensor([0, 3]))
    ed = EncoderDecoder(GPTConfig(**SMALL))
    with pytest.raises(ValueError, match="bos_id"):
        ed.generate(ids, bos_id=50, eos_id=2, max_new_tokens=3)
    with pytest.raises(ValueError, match="max_new_tokens must be <= 15"):
        ed.generate(ids, bos_id=1, eos_id=2, max_new_tokens=100)


def test_mlm_mask_id_may_be_an_extra_token_after_the_vocabulary():
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 10, (4, 50), generator=g)
    inputs, targets = mlm_mask(idx, mask_id=10, vocab_size=10, prob=0.5, generator=g)
    assert (inputs == 10).any()                       # the appended [MASK] id is used
    assert inputs[inputs != 10].max() < 10            # random replacements stay in the vocab


def test_every_module_imports_on_its_own():
    # A learner's first line may be any of these: `from course_lib.pretrained import ...` once
    # failed with a circular import. Each module is imported first in a fresh interpreter.
    import pkgutil
    import subprocess
    import sys

    import course_lib

    names = [m.name for m in pkgutil.walk_packages(course_lib.__path__, "course_lib.")
             if not m.name.endswith("__main__")]
    script = ("import importlib, sys\n"
              "for name in sys.argv[1:]:\n"
              "    for k in [k for k in sys.modules if k.startswith('course_lib')]:\n"
              "        del sys.modules[k]\n"
              "    importlib.import_module(name)\n")
    out = subprocess.run([sys.executable, "-c", script, *names], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "course_lib.pretrained" in names and len(names) > 20
