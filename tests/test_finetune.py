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


# ------------------------------------------------------------ the chapter's plumbing
@pytest.fixture(scope="module")
def runs():
    return F.Runs(load_pretrained("tiny-gpt"))


def test_runs_measure_hold_to_the_record_and_compare(runs):
    got = runs.checked_accuracy("lora_r1")
    assert got["test"] == pytest.approx(runs.record["runs"]["lora_r1"]["accuracy"]["test"],
                                        abs=1 / 300)
    assert len(runs.hits["lora_r1"]) == F.N_TEST
    assert runs.model("lora_r1") is runs.model("lora_r1")          # built once
    same = runs.paired("lora_r1", "lora_r1")
    assert same["diff"] == 0 and same["low"] == 0 and same["high"] == 0 and same["p"] == 1.0


def test_runs_refuse_bad_input(runs):
    with pytest.raises(TypeError, match="Runs: base"):
        F.Runs("tiny-gpt")
    with pytest.raises(ValueError, match="Runs.model: name"):
        runs.model("lora_r3")
    with pytest.raises(ValueError, match="checked_accuracy"):
        runs.paired("full", "lora_r1")
    with pytest.raises(ValueError, match="glue_paired: key"):
        F.glue_paired("", {"diff": 0, "low": 0, "high": 0, "p": 1})
    with pytest.raises(ValueError, match="glue_paired: result"):
        F.glue_paired("k", {"diff": 0})


def test_step_costs_measure_a_copy(runs):
    from course_lib import align, data

    model = runs.model("lora_r4")
    batch = align.sft_batch(runs.tok, data.instruction_examples(4, "train"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    costs = F.step_costs(model, batch, repeats=1)
    assert costs["trainable"] == 16 * peft.lora_param_count(128, 128, 4)
    parts = costs["parts"]
    assert costs["tensors"] == parts["gradients"] + parts["optimizer"] + parts["activations"]
    assert parts["gradients"] == 4 * costs["trainable"]             # fp32 gradients
    n_tensors = sum(p.requires_grad for p in model.parameters())
    # AdamW's two fp32 moments per trainable number, and one fp32 step count per tensor
    assert costs["opt"] == 8 * costs["trainable"] + 4 * n_tensors
    assert costs["peak"] > 0 and costs["s_step"] > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)    # the model is untouched
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="step_costs: repeats"):
        F.step_costs(model, batch, repeats=0)
    with pytest.raises(ValueError, match="step_costs: batch"):
        F.step_costs(model, batch[0])
    with pytest.raises(TypeError, match="step_costs: model"):
        F.step_costs("model", batch)


def test_choice_items_hold_the_reference_and_three_others(runs):
    examples = runs.tests["test"][:40]
    items = F.choice_items(runs.tok, examples)
    closed = [e for e in examples if e["kind"] in F.CHOICE_WORDS]
    assert len(items) == len(closed) > 0
    for item, e in zip(items, closed):
        words = [runs.tok.decode(c).strip() for c in item["choices_ids"]]
        assert len(set(words)) == 4 and words[item["answer"]] == e["response"]
        assert all(w in F.CHOICE_WORDS[e["kind"]] for w in words)
    assert items == F.choice_items(runs.tok, examples)              # deterministic by seed
    with pytest.raises(TypeError, match="choice_items: examples"):
        F.choice_items(runs.tok, "a story")


def test_short_answer_and_judge(runs):
    e = runs.tests["test"][0]
    answer = F.short_answer(runs.model("full"), runs.tok, e["instruction"])
    assert isinstance(answer, str) and "\n" not in answer
    score = F.ab_judge(runs.model("qlora_r4"), runs.tok)
    a, b = score(e["instruction"], answer, "")
    assert a < 0 and b < 0                                           # log-probabilities
    with pytest.raises(TypeError, match="short_answer: instruction"):
        F.short_answer(runs.model("full"), runs.tok, 3)
