"""Chapter 5's shipped fine-tuning runs: held to their record, and the CLI's plumbing."""

import json
import shutil

import pytest
import torch

from course_lib import finetune as F
from course_lib import peft
from course_lib.checkpoint import EARLY_RTOL, same_machine
from course_lib.models import WEIGHTS_DIR, load_pretrained


@pytest.fixture(scope="module")
def shipped():
    return F.load_runs()


def test_every_run_is_shipped_and_restores(shipped):
    record, states = shipped
    assert set(record["runs"]) == set(states) == set(F.RUNS)
    base = load_pretrained("tiny-gpt")
    for name, run in F.RUNS.items():
        model = F.restore(base, run, states[name])
        if run["method"] in ("lora", "qlora"):
            assert peft.count_trainable(model) == 16 * peft.lora_param_count(128, 128, run["r"])
        assert record["runs"][name]["steps"] == run["steps"]
        assert record["runs"][name]["lr"] == run["lr"]


def test_shipped_accuracy_matches_the_record(shipped):
    record, states = shipped
    base = load_pretrained("tiny-gpt")
    model = F.restore(base, F.RUNS["lora_r4"], states["lora_r4"])
    tests = F.held_out()
    got = F.accuracy(model, base.tokenizer, tests["test"])
    assert got == pytest.approx(record["runs"]["lora_r4"]["accuracy"]["test"], abs=1 / 300)


def test_a_corrupted_file_is_refused(tmp_path):
    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"{F.NAME}{suffix}", tmp_path / f"{F.NAME}{suffix}")
    path = tmp_path / f"{F.NAME}.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        F.load_runs(tmp_path)
    with pytest.raises(ValueError, match="missing"):
        F.load_runs(tmp_path / "nowhere")


def test_cli_writes_weights_and_record(tmp_path, monkeypatch):
    monkeypatch.setitem(F.RUNS, "prompt_k1", {**F.RUNS["prompt_k1"], "steps": 2})
    monkeypatch.setattr(F, "N_TEST", 6)
    record = F.run_all(tmp_path, ["prompt_k1"], progress=False)
    again, states = F.load_runs(tmp_path)
    assert again == json.loads(json.dumps(record))
    assert states["prompt_k1"]["prompt"].shape == (1, 128)
    assert not list(tmp_path.glob("*.tmp"))


def test_build_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="method"):
        F.build(load_pretrained("tiny-gpt"), {"method": "magic"})


def test_a_shipped_run_regenerates(shipped):
    """`python -m course_lib.finetune` gives the shipped run (one cheap run): its tensors and
    every loss bit for bit on the machine the record names, elsewhere the first REPLAY_STEPS
    losses within EARLY_RTOL (the largest spread measured across kernel sets and threads is in
    bench/portability.json). Adam-trained weights are not compared across machines: a gradient
    whose sign rounding decides moves a weight by a whole step."""
    record, states = shipped
    state, entry = F.train_run("tenant_who-what")
    assert state.keys() == states["tenant_who-what"].keys()
    if same_machine(record):
        for key, value in state.items():
            assert torch.equal(value, states["tenant_who-what"][key]), key
    want = record["runs"]["tenant_who-what"]["loss"]
    assert len(entry["loss"]) == len(want) == F.RUNS["tenant_who-what"]["steps"]
    if same_machine(record):
        assert entry["loss"] == want
    steps = F.REPLAY_STEPS
    worst = max(abs(a - b) / abs(b) for a, b in zip(entry["loss"][:steps], want[:steps]))
    assert worst <= EARLY_RTOL, worst
