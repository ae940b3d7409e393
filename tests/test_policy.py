"""Chapter 7's fine-tuned reader and tool-use policy: formats, position interpolation, decoding
held to a second method, the shipped checkpoint held to its record, and bad input."""

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import agent, align, data, rag
from course_lib import policy as P
from course_lib.checkpoint import EARLY_RTOL, same_machine
from course_lib.models import GPT, WEIGHTS_DIR, GPTConfig
from course_lib.pretrained import load_pretrained


@pytest.fixture(scope="module")
def model():
    return P.load_policy("ch7-reader")


@pytest.fixture(scope="module")
def agent_model():
    return P.load_policy("ch7-agent")


# ------------------------------------------------------------------ position interpolation
def test_extend_positions_copies_the_old_table():
    m = GPT(GPTConfig(vocab_size=16, block_size=5, n_layer=1, n_head=1, d_model=4))
    old = m.pos_emb.weight.detach().clone()
    P.extend_positions(m, 12)
    new = m.pos_emb.weight.detach()
    assert new.shape == (12, 4) and m.config.block_size == 12
    torch.testing.assert_close(new[:5], old)
    torch.testing.assert_close(new[5:10], old)
    torch.testing.assert_close(new[10:], old[:2])
    m(torch.zeros(1, 12, dtype=torch.long))        # the model now takes 12 positions


def test_extend_positions_keeps_short_inputs_exact_and_refuses_bad_sizes():
    m = load_pretrained("tiny-gpt")
    x = torch.tensor([m.tokenizer.encode("Once upon a time, there was a dog.")])
    before = m(x)[0]
    P.extend_positions(m, 512)
    torch.testing.assert_close(m(x)[0], before)    # a short prompt sees the same positions
    for bad in (100, 12.5, True, "512"):
        with pytest.raises(ValueError, match="block_size"):
            P.extend_positions(load_pretrained("tiny-gpt"), bad)
    with pytest.raises(TypeError):
        P.extend_positions(torch.nn.Linear(2, 2), 512)


# ------------------------------------------------------------------ formats
def test_read_prompt_numbers_passages_and_says_none_when_closed_book():
    p = P.read_prompt("Who?", ["Ann is here.", "Bo is there."])
    assert p == "Context:\n[1] Ann is here.\n[2] Bo is there.\nQuestion: Who?"
    assert P.read_prompt("Who?", []) == "Context:\nnone\nQuestion: Who?"
    for bad in ("", "  ", None):
        with pytest.raises(ValueError, match="question"):
            P.read_prompt(bad, [])
    with pytest.raises(TypeError, match="list of str"):
        P.read_prompt("Who?", [(3, "text")])
    with pytest.raises(TypeError):
        P.read_prompt("Who?", "text")


def test_propositions_give_each_sentence_its_full_name():
    chunk = ("Runa Stadol is a resident of Veldmoor. Runa plays the harp on Sundays. "
             "Gulls followed the boats. Runa was born in May.")
    assert P.propositions(chunk) == ["Runa Stadol plays the harp on Sundays.",
                                     "Gulls followed the boats.", "Runa Stadol was born in May."]
    assert P.propositions("No header here. Runa was born in May.") == [
        "No header here.", "Runa was born in May."]
    assert P.propositions("") == []
    with pytest.raises(TypeError):
        P.propositions(None)


def test_agent_prompt_lists_tools_and_replays_the_steps():
    step = agent.Step(tool="calculator", args={"expression": "2 + 3"}, observation="5")
    p = P.agent_prompt("What is 2 + 3?", ["calculator", "search"], [step])
    assert p.splitlines() == ["Tools: calculator, search", "Question: What is 2 + 3?",
                              'Action: {"name": "calculator", "input": {"expression": "2 + 3"}}',
                              "Observation: 5"]
    assert P.agent_prompt("What is 2 + 3?", []).startswith("Tools: none\n")
    bad = agent.parse_step('Action: {"name": "calculator", "input": {')
    assert "not valid JSON" in P.agent_prompt("Q?", ["calculator"], [bad])


def test_parse_cited():
    assert P.parse_cited("cooper [12]") == ("cooper", 12)
    assert P.parse_cited(" Heron Market [0] ") == ("Heron Market", 0)
    assert P.parse_cited("cooper") == ("cooper", None)
    assert P.parse_cited("[x] cooper") == ("[x] cooper", None)
    with pytest.raises(TypeError):
        P.parse_cited(None)


# ------------------------------------------------------------------ training data
def test_training_examples_never_use_the_chapters_town_or_test_arithmetic():
    examples = P.training_examples(tasks=P.RUNS["ch7-agent"]["tasks"])
    assert 0 not in P.TRAIN_SEEDS
    test_people = {q["person"] for q in data.town_questions(seed=P.CHAPTER_TOWN_SEED)
                   if q["split"] == "test"}
    test_arith = {q["question"] for d in P.EVAL_ARITHMETIC_SEEDS
                  for q in data.arithmetic_questions(50, digits=d, seed=d)}
    text = "\n".join(e["instruction"] for e in examples)
    assert not any(f"Question: {q}" in text for q in test_arith)
    # names recur by chance across generated towns (with their own random facts), but no
    # passage about a held-out Veldmoor resident is ever shown in training
    texts, _ = P.town_passages(P.CHAPTER_TOWN_SEED)
    held_out = [t for t in texts if any(t.startswith(f"{p} is a resident") for p in test_people)]
    assert len(held_out) > 60
    assert not [t for t in held_out if t in text]


def test_copy_drills_answer_with_a_copy_of_the_instruction():
    drills = P.copy_drills(600, seed=3)
    assert drills == P.copy_drills(600, seed=3) and drills != P.copy_drills(600, seed=4)
    kinds = {"expression": 0, "observation": 0, "town question": 0}
    prefixed = 0
    for d in drills:
        lines = d["instruction"].splitlines()
        prefixed += not d["instruction"].startswith("Question: ")
        if d["response"].startswith("Final Answer: "):       # the number, not the question's
            number = d["response"].removeprefix("Final Answer: ")
            assert lines[-1] == f"Observation: {number}" and number.isdigit()
            assert len(number) <= 8 and re.fullmatch(r"Question: What is \d+ [-+*] \d+\?",
                                                      lines[-2])
            kinds["observation"] += 1
        elif re.fullmatch(r"\d+ [-+*] \d+", d["response"]):
            assert lines[-1] == f"Question: What is {d['response']}?"
            kinds["expression"] += 1
        else:                                                 # a training town's question
            assert lines[-1] == f"Question: {d['response']}" and d["response"].endswith("?")
            kinds["town question"] += 1
    assert all(150 < n < 250 for n in kinds.values()), kinds  # a third of each
    assert 330 < prefixed < 470                                # two thirds after passages
    assert P.copy_drills(0) == []
    examples = P.training_examples(tasks=("copy",))
    assert len(examples) == P.COPY_DRILLS
    for bad in (-1, 2.5, None, True):
        with pytest.raises(ValueError, match="n must be"):
            P.copy_drills(bad)
    with pytest.raises(ValueError, match="tasks must be"):
        P.training_examples(tasks=("copy", "poetry"))


def test_reading_example_puts_the_gold_where_asked_and_cites_it():
    texts, questions = P.town_passages(7)
    pool = P.town_pool(texts)
    rng = random.Random(0)
    q = questions[0]
    assert q["gold_prop"] in pool and q["gold_prop"].startswith(q["person"] + " ")
    for k in (1, 3, 5):
        for pos in range(k):
            e = P.reading_example(q, pool, k, pos, rng)
            lines = e["instruction"].splitlines()[1:1 + k]
            assert len(lines) == k
            assert lines[pos] == f"[{pos + 1}] {q['gold_prop']}"
            assert e["response"] == f"{q['answer']} [{pos + 1}]"
            assert sum(q["answer"] in line for line in lines) == 1   # one passage answers
            if k == 5:   # half the distractors are about the same resident
                assert sum(q["person"] in line for line in lines) >= 3
    for bad_k, bad_pos in ((3, 3), (3, -1), (0, 0), (2.5, 0)):
        with pytest.raises(ValueError):
            P.reading_example(q, pool, bad_k, bad_pos, rng)


def test_retrieved_propositions_keep_rank_order_once_each_with_their_chunk():
    texts = ["Ann Bo is a resident of X. Ann rows. Ann sings.",
             "Ann Bo is a resident of X. Ann sings. Ann runs.",
             "Cy Do is a resident of X. Cy naps."]
    got = P.retrieved_propositions([1, 0, 2], texts, n_chunks=2, max_passages=5)
    assert got == [("Ann Bo sings.", 1), ("Ann Bo runs.", 1), ("Ann Bo rows.", 0)]
    assert P.retrieved_propositions([2, 0], texts, n_chunks=1) == [("Cy Do naps.", 2)]
    assert len(P.retrieved_propositions([0, 1, 2], texts, 3, 2)) == 2
    assert P.retrieved_propositions([], texts) == []
    with pytest.raises(ValueError):
        P.retrieved_propositions([0], texts, n_chunks=0)


def test_search_tool_numbers_the_propositions_and_checks_its_arguments():
    texts, questions = P.town_passages(5)
    tool = P.search_tool(rag.Retriever(texts, dense=False), texts)
    q = questions[0]
    out = tool({"query": q["question"]})
    lines = out.splitlines()
    assert len(lines) == 2 and [ln.split("]")[0] for ln in lines] == ["[1", "[2"]
    # BM25 on a paraphrased question finds the gold sentence for many questions, not all;
    # three passages find it more often than two
    three = P.search_tool(rag.Retriever(texts, dense=False), texts, max_passages=3)
    hits = {tl: sum(any(x["gold_prop"] in ln for ln in t({"query": x["question"]}).splitlines())
                    for x in questions) / len(questions)
            for tl, t in (("two", tool), ("three", three))}
    assert 0.3 < hits["two"] < hits["three"] < 1.0, hits
    assert len(three({"query": q["question"]}).splitlines()) == 3
    assert tool({}).startswith("error") and tool({"query": "x", "k": 3}).startswith("error")
    for bad in (0, -1, 1.5, None):
        with pytest.raises(ValueError, match="max_passages"):
            P.search_tool(rag.Retriever(texts, dense=False), texts, max_passages=bad)
    with pytest.raises(TypeError, match="search_tool: retriever"):
        P.search_tool(texts, texts)
    with pytest.raises(TypeError, match="search_tool: texts"):
        P.search_tool(rag.Retriever(texts, dense=False), "texts")
    with pytest.raises(TypeError, match="search_tool: method"):
        P.search_tool(rag.Retriever(texts, dense=False), texts, method=None)


# ------------------------------------------------------------------ the shipped checkpoint
@pytest.mark.parametrize("name", sorted(P.RUNS))
def test_shipped_record_and_its_loss_curve(name):
    record = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    run = P.RUNS[name]
    assert record["block_size"] == P.BLOCK and tuple(record["chunking"]) == P.CHUNKING
    assert record["steps"] == run["steps"] == len(record["loss"])
    assert tuple(record["tasks"]) == run["tasks"] and record["lr"] == run["lr"]
    first, last = sum(record["loss"][:20]) / 20, sum(record["loss"][-20:]) / 20
    assert last < first / 5, (first, last)


@pytest.mark.parametrize("name", sorted(P.RUNS))
def test_training_is_the_code_that_made_the_record(name):
    """The first steps of a rerun follow the recorded curve, so the record was made by this
    code and these examples: bit for bit on the machine the record names, elsewhere within
    EARLY_RTOL (an AVX2 kernel set gives 8e-8 relative; bench/portability.json)."""
    record = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    torch.set_num_threads(1)
    _, history = P.train_policy(name, steps=3)   # the run's warm-up: the same learning rates
    rtol = 0.0 if same_machine(record) else EARLY_RTOL
    assert history.loss == pytest.approx(record["loss"][:3], rel=rtol, abs=0.0)


def test_greedy_starts_with_agrees_with_decoding(model):
    texts, questions = P.town_passages(3)
    pool = P.town_pool(texts)
    rng = random.Random(1)
    items = []
    for q in questions[:12]:
        e = P.reading_example(q, pool, 3, rng.randrange(3), rng)
        said = P.generate_answer(model, e["instruction"])
        items += [(e["instruction"], said), (e["instruction"], said + "x"),
                  (e["instruction"], e["response"])]
    got = P.greedy_starts_with(model, items)
    for (instruction, text), ok in zip(items, got):
        said = P.generate_answer(model, instruction)
        assert ok == said.startswith(text), (text, said)
    assert got[0::3] == [True] * 12 and got[1::3] == [False] * 12
    written = P.greedy_written(model, items)     # how much of each text greedy writes
    for (instruction, text), ok, w in zip(items, got, written):
        said = P.generate_answer(model, instruction)
        assert (w == text) == ok and text.startswith(w) and said.startswith(w), (text, w, said)
    assert written[1::3] == [t for _, t in items[0::3]]   # all but the stray "x"


def test_the_reader_answers_from_context_and_cites(model):
    texts, questions = P.town_passages(99)              # a town the model never saw
    pool = P.town_pool(texts)
    rng = random.Random(2)
    right = cited = 0
    for q in questions[:40]:
        pos = rng.randrange(3)
        e = P.reading_example(q, pool, 3, pos, rng)
        answer, cite = P.parse_cited(P.generate_answer(model, e["instruction"]))
        right += answer == q["answer"]
        cited += cite == pos + 1
    closed = sum(P.parse_cited(P.generate_answer(model, P.read_prompt(q["question"], [])))[0]
                 == q["answer"] for q in questions[:40])
    # measured on the shipped reader: 26 of 40 right and cited, 4 of 40 closed-book
    assert right >= 22 and cited >= 15 and closed <= 6, (right, cited, closed)


def test_the_agent_copies_its_arguments_and_beats_itself_without_tools(agent_model):
    texts, _ = P.town_passages(5)
    search = P.search_tool(rag.Retriever(texts, dense=False), texts)
    bot = agent.ReActAgent(P.ModelPolicy(agent_model), [agent.CALCULATOR, search], max_steps=2)
    no_tools = agent.ReActAgent(P.ModelPolicy(agent_model), [], max_steps=1)
    qs = data.arithmetic_questions(10, digits=3, seed=123)      # not chapter 7's test sets
    runs = [bot.run(q["question"]) for q in qs]
    exact = sum(steps[0].tool == "calculator" and steps[0].args == {"expression": q["expression"]}
                for q, (_, steps) in zip(qs, runs))
    right = sum(P.parse_cited(a or "")[0] == q["answer"] for q, (a, _) in zip(qs, runs))
    guessed = [no_tools.run(q["question"])[0] for q in qs]
    assert all(g is not None for g in guessed)                 # answers directly, no tool
    unaided = sum(P.parse_cited(g)[0] == q["answer"] for q, g in zip(qs, guessed))
    # measured on the shipped agent: 10 of 10 exact calls, 10 of 10 right, 0 of 10 without tools
    assert exact >= 9 and right >= 8 and unaided <= 1, (exact, right, unaided)


def test_policy_inputs_are_checked(model):
    with pytest.raises(ValueError, match="exceeds the context"):
        P.generate_answer(model, "x " * 300)
    with pytest.raises(ValueError, match="empty"):
        P.greedy_starts_with(model, [])
    with pytest.raises(ValueError, match="text"):
        P.greedy_starts_with(model, [("Q?", "")])
    with pytest.raises(ValueError, match="empty"):
        P.greedy_written(model, [])
    with pytest.raises(ValueError, match="text"):
        P.greedy_written(model, [("Q?", "")])
    with pytest.raises(ValueError, match="reserved chat token"):
        P.generate_answer(model, "a\x03b")


def test_a_corrupted_or_foreign_checkpoint_is_refused(tmp_path):
    name = "ch7-reader"
    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    path = tmp_path / f"{name}.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        P.load_policy(name, tmp_path)
    meta = tmp_path / f"{name}.json"
    record = json.loads(meta.read_text())
    meta.write_text(json.dumps({**record, "block_size": 128}))
    with pytest.raises(ValueError, match="record"):
        P.load_policy(name, tmp_path)
    meta.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        P.load_policy(name, tmp_path)
    with pytest.raises(ValueError, match="missing"):
        P.load_policy(name, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="name"):
        P.load_policy("ch7-other")


def test_cli_writes_an_atomic_checkpoint_that_loads(tmp_path):
    assert P.main(["--run", "ch7-reader", "--out", str(tmp_path), "--steps", "4",
                   "--threads", "1"]) == 0
    m = P.load_policy("ch7-reader", tmp_path)
    assert m.config.block_size == P.BLOCK
    record = json.loads((tmp_path / "ch7-reader.json").read_text())
    assert record["steps"] == 4 and "--run ch7-reader" in record["how_made"]
    assert not list(tmp_path.glob("*.tmp"))
    for bad in (["--steps", "0"], ["--threads", "0"], ["--run", "nope"]):
        with pytest.raises(SystemExit):
            P.main(bad)
    with pytest.raises(ValueError, match="name"):
        P.train_policy("nope")
    with pytest.raises(ValueError, match="tasks"):
        P.training_examples(tasks=("dance",))


def test_chat_tokens_are_the_templates():
    assert align.END == "\x03"   # generate_answer stops on this byte's token


def test_gold_position_shares_match_the_training_examples():
    """The closed form against a count of the citations the reading examples ask for."""
    shares = P.gold_position_shares()
    assert len(shares) == 5 and sum(shares) == pytest.approx(1.0)
    assert shares[0] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5)
    assert shares[-1] == pytest.approx(1 / 25)
    reads = [e for e in P.training_examples(seed=3, tasks=("read",)) if e["response"].endswith("]")]
    counts = [sum(e["response"].endswith(f"[{j}]") for e in reads) for j in range(1, 6)]
    n = len(reads)
    for j, share in enumerate(shares):   # within 4 binomial standard deviations
        assert abs(counts[j] / n - share) < 4 * (share * (1 - share) / n) ** 0.5, (j, counts)
    for bad in ((0, 5), (3, 2), (1.0, 5), "15"):
        with pytest.raises(ValueError):
            P.gold_position_shares(bad)


def test_the_package_keeps_every_public_name_and_its_command_line():
    """policy is a package (traces, model, __main__); its old names all still import from it,
    and ``python -m course_lib.policy`` runs the command line without importing it twice."""
    from course_lib.policy import __main__ as cli
    from course_lib.policy import model, traces
    for name in P.__all__:
        assert getattr(P, name) is not None, name
    assert P.main is cli.main and P.load_policy is model.load_policy
    assert P.training_examples is traces.training_examples
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                           "course_lib.policy", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0 and "--run" in done.stdout, done.stderr


# ------------------------------------------------------------ chapter 7b's measurements
def test_attention_maps_are_the_models_own_and_causal(agent_model):
    ids = agent_model.tokenizer.encode(align.format_chat("Question: What is 12 + 34?"))
    maps = P.attention_maps(agent_model, ids)
    n = len(ids)
    cfg = agent_model.config
    assert maps.shape == (cfg.n_layer, cfg.n_head, n, n)
    # exact, by construction: rows of a softmax over the allowed keys; nothing above the diagonal
    assert torch.allclose(maps.sum(-1), torch.ones(cfg.n_layer, cfg.n_head, n), atol=1e-5)
    assert torch.equal(maps.triu(1), torch.zeros_like(maps))
    # the layers' own forward with need_weights, captured by a hook, gives the same weights
    seen = []

    def capture(mod, args, kwargs, out):
        if not kwargs.get("need_weights"):     # not the hook's own second call
            seen.append(mod(*args, **kwargs, need_weights=True)[1][0])

    hooks = [b.attn.register_forward_hook(capture, with_kwargs=True)
             for b in agent_model.blocks]
    try:
        agent_model(torch.tensor([ids]))
    finally:
        for h in hooks:
            h.remove()
    assert torch.allclose(torch.stack(seen), maps, atol=1e-6)
    with pytest.raises(ValueError, match="ids"):
        P.attention_maps(agent_model, [])
    with pytest.raises(ValueError, match="context"):
        P.attention_maps(agent_model, [1] * (cfg.block_size + 1))


def test_induction_scores_find_the_copy_heads_fine_tuning_made(agent_model):
    base = load_pretrained("tiny-gpt")
    align.init_chat_tokens(base)
    rng = random.Random(0)
    pairs = []
    for _ in range(4):
        a, b = rng.randrange(10 ** 5, 10 ** 6), rng.randrange(10 ** 5, 10 ** 6)
        pairs.append((f"Question: What is {a} + {b}?", f"{a} + {b}"))
    tuned, untuned = P.induction_scores(agent_model, pairs), P.induction_scores(base, pairs)
    assert tuned.max() > 0.3 and untuned.max() < 0.1
    with pytest.raises(ValueError, match="not a copy"):
        P.induction_scores(agent_model, [("Question: What is 1 + 2?", "7 + 8")])
    with pytest.raises(ValueError, match="examples"):
        P.induction_scores(agent_model, [])


def test_context_segments_add_up_to_the_whole_sequence(agent_model):
    tok = agent_model.tokenizer
    steps = [agent.Step(thought="a fact; search the register.", tool="search",
                        args={"query": "Who?"}, observation="[1] Runa.\n[2] Ebba.",
                        raw='Thought: a fact; search the register.\nAction: {"name": "search", '
                            '"input": {"query": "Who?"}}'),
             agent.Step(thought="the observation says.", answer="Runa [1]",
                        raw="Thought: the observation says.\nFinal Answer: Runa [1]")]
    parts = P.context_segments(tok, "Who?", ["search"], steps)
    for k, (counts, step) in enumerate(zip(parts, steps)):
        full = align.format_chat(P.agent_prompt("Who?", ["search"], steps[:k]), step.raw)
        assert sum(counts.values()) == len(tok.encode(full))       # exact: token counts
        assert set(counts) == set(P.CONTEXT_PARTS)
    assert parts[0]["observations"] == 0 and parts[1]["observations"] > 0
    assert parts[0]["answer"] == 0 and parts[1]["answer"] > 0
    with pytest.raises(TypeError, match="steps"):
        P.context_segments(tok, "Who?", [], ["not a step"])


def test_measure_tool_use_counts_each_skill(agent_model, model):
    texts, questions = P.town_passages()
    search = P.search_tool(rag.Retriever(texts, dense=False), texts, method="bm25")
    town = [q for q in questions if q["split"] == "test"][:2]
    tasks = {"3-digit": data.arithmetic_questions(3, digits=3, seed=3), "town": town}
    out = P.measure_tool_use(agent_model, model, search, tasks)
    assert set(out.results) == {(t, m) for t in tasks for m in (
        "learned, with tools", "learned, no tools", "scripted, with tools")}
    assert out.results["3-digit", "scripted, with tools"] == 1.0   # it copies exactly
    assert set(out.skills) == {"3-digit"} and 0 <= out.query_exact <= 1
    for (name, mode), runs in out.runs.items():
        assert out.right[name, mode] == [P.parse_cited(a or "")[0] == q["answer"]
                                         for q, (a, _) in zip(tasks[name], runs)]
    with pytest.raises(ValueError, match="tasks"):
        P.measure_tool_use(agent_model, model, search, {})
    with pytest.raises(TypeError, match="search"):
        P.measure_tool_use(agent_model, model, "search", tasks)
