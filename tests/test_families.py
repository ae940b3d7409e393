import json
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from course_lib import data
from course_lib import families as F
from course_lib.models import WEIGHTS_DIR, EncoderDecoder, EncoderModel, load_pretrained
from course_lib.tokenizer import BPETokenizer


def test_pad_batch():
    ids, mask = F.pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="no sequences"):
        F.pad_batch([], 0)
    with pytest.raises(ValueError, match="empty sequence"):
        F.pad_batch([[1], []], 0)


def test_metrics():
    assert F.accuracy([1, 2, 3, 0], [1, 2, 0, 0]) == 0.75
    assert F.exact_match(["342", " 7"], ["342", "17"]) == 0.5
    assert F.majority_baseline([0, 1, 1, 2], [1, 1, 0, 2]) == 0.5
    with pytest.raises(ValueError, match="2 predictions for 3"):
        F.accuracy([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="no labels"):
        F.accuracy([], [])
    with pytest.raises(ValueError, match="1 predictions for 2"):
        F.exact_match(["1"], ["1", "2"])
    with pytest.raises(ValueError, match="no references"):
        F.exact_match([], [])
    with pytest.raises(ValueError, match="no training labels"):
        F.majority_baseline([], [1])


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'gpt-5'"):
        F.get_preset("gpt-5")
    with pytest.raises(ValueError, match="unknown preset"):
        F.run_preset("tiny-gpt")        # a decoder preset lives in course_lib.train


def test_held_out_sets_are_disjoint():
    train, test = F.number_task(F.get_preset("tiny-t5"))
    train_n, test_n = {int(d) for _, d in train}, {int(d) for _, d in test}
    assert not train_n & test_n
    assert train_n | test_n == set(range(1000))
    assert all(data.number_to_words(int(d)) == w for w, d in train + test)
    labelled, test = F.mood_task(F.get_preset("tiny-bert"))
    assert not {t for t, _ in labelled} & {t for t, _ in test}


def test_t5_tensors_shift_targets():
    tok = BPETokenizer.train("three hundred forty two\none", 400, special_tokens=F.T5_SPECIALS)
    sp = tok.special_tokens
    src, src_mask, dec_in, targets = F._t5_tensors(tok, [("three hundred forty two", "342"),
                                                         ("one", "1")])
    assert src_mask.tolist()[1].count(True) == 1
    assert dec_in[0].tolist() == [sp["<bos>"], *tok.encode("342")]
    assert targets[0].tolist() == [*tok.encode("342"), sp["<eos>"]]
    assert targets[1].tolist() == [*tok.encode("1"), sp["<eos>"], -100, -100]


@pytest.mark.parametrize("name", ["micro-bert", "micro-t5"])
def test_training_is_deterministic(name, tmp_path):
    """Same preset and seed: the same weights, bit for bit, and a loadable checkpoint."""
    a = F.run_preset(name, tmp_path / "a", progress=False)
    b = F.run_preset(name, tmp_path / "b", progress=False)
    assert a["sha256"] == b["sha256"]
    assert a["family"] in ("encoder", "encoder-decoder")
    for suffix in (".safetensors", ".json", ".tokenizer.json"):
        assert (tmp_path / "a" / f"{name}{suffix}").exists()
    # load_pretrained only knows the shipped names: copy under one to load it
    shipped = "tiny-bert" if a["family"] == "encoder" else "tiny-t5"
    for f in (tmp_path / "a").iterdir():
        shutil.copy(f, tmp_path / f.name.replace(name, shipped))
    model = load_pretrained(shipped, weights_dir=tmp_path)
    assert model.meta["sha256"] == a["sha256"]
    assert sum(p.numel() for p in model.parameters()) == a["n_params"]


def test_mlm_pretraining_learns():
    preset = F.get_preset("micro-bert")
    text = data.corpus_text("train", n_stories=200)
    tok = BPETokenizer.train(text, 300, special_tokens=F.BERT_SPECIALS)
    ids = torch.tensor(tok.encode(text))
    cfg = replace(preset.config, vocab_size=tok.vocab_size)
    torch.manual_seed(0)
    model = EncoderModel(cfg)
    mask_id = tok.special_tokens["[MASK]"]
    before = F.evaluate_mlm(model, ids, mask_id, n_windows=16)
    F.pretrain_mlm(model, ids, replace(preset, steps=60), mask_id)
    after = F.evaluate_mlm(model, ids, mask_id, n_windows=16)
    assert after["loss"] < before["loss"] - 1.0
    with pytest.raises(ValueError, match="need"):
        F.evaluate_mlm(model, ids[:100], mask_id, n_windows=16)


def test_predict_and_translate_bad_input():
    bert, t5 = load_pretrained("tiny-bert"), load_pretrained("tiny-t5")
    for bad in ("a single string", []):
        with pytest.raises(ValueError, match="non-empty list"):
            F.predict_classes(bert, bad)
        with pytest.raises(ValueError, match="non-empty list"):
            F.translate(t5, bad)


def test_shipped_tiny_t5_translates_held_out_numbers():
    model = load_pretrained("tiny-t5")
    assert isinstance(model, EncoderDecoder) and model.meta["family"] == "encoder-decoder"
    train, test = F.number_task(F.get_preset("tiny-t5"))
    assert sorted(int(d) for _, d in test) == model.meta["test_numbers"]
    preds = F.translate(model, [w for w, _ in test])
    em = F.exact_match(preds, [d for _, d in test])
    assert em == pytest.approx(model.meta["exact_match"])   # the stated number is the real one
    assert em >= 0.95
    assert F.translate(model, ["three hundred forty two"]) == ["342"]


def test_shipped_tiny_bert_beats_majority_baseline():
    model = load_pretrained("tiny-bert")
    assert isinstance(model, EncoderModel) and model.meta["family"] == "encoder"
    labelled, test = F.mood_task(F.get_preset("tiny-bert"))
    acc = F.accuracy(F.predict_classes(model, [t for t, _ in test]), [y for _, y in test])
    assert acc == pytest.approx(model.meta["test_accuracy"])
    # The count is the record's on every machine, not only this one: no decision is near a
    # tie (the smallest gap between the top two logits is 0.73; kernels move logits by ~1e-6)
    ids, mask = F.pad_batch([model.tokenizer.encode(t) for t, _ in test],
                            model.tokenizer.special_tokens["[PAD]"])
    top2 = model.classify(ids, mask)[0].topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 1e-3
    baseline = F.majority_baseline([y for _, y in labelled], [y for _, y in test])
    assert baseline == pytest.approx(model.meta["majority_baseline"])
    assert acc >= 0.9 and acc > baseline + 0.4
    # masked-LM pretraining worked: far better than always guessing the commonest token
    assert model.meta["mlm_val_accuracy"] > model.meta["mlm_unigram_accuracy"] + 0.3


def test_shipped_metadata():
    for name in ("tiny-bert", "tiny-t5"):
        meta = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        for key in ("family", "config", "sha256", "n_params", "history", "how_made"):
            assert key in meta, (name, key)
        assert (WEIGHTS_DIR / f"{name}.safetensors").stat().st_size < 4_000_000


def test_cli_rejects_unknown_preset():
    r = subprocess.run([sys.executable, "-m", "course_lib.families", "--preset", "nope"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "invalid choice" in r.stderr
