"""course_lib.distributed: DDP and FSDP on 2 CPU processes (gloo) match one process."""

import json
import os
import subprocess
import sys

import pytest
import torch

from course_lib import distributed as D
from course_lib.memory import tensor_bytes

JOB = {"vocab_size": 64, "block_size": 16, "n_layer": 2, "n_head": 2, "d_model": 32}


@pytest.fixture(scope="module")
def runs():
    """One spawn of 2 ranks runs DDP then FSDP; plus the single-process reference."""
    single = D.run_distributed(D.Job(strategy="single", model=JOB, steps=3))
    ddp, fsdp = D.run_distributed([D.Job(strategy="ddp", model=JOB, steps=3),
                                   D.Job(strategy="fsdp", model=JOB, steps=3)])
    return single, ddp, fsdp


def test_ddp_ranks_hold_full_identical_copies(runs):
    single, ddp, _ = runs
    full = single.ranks[0]["param_bytes"]
    assert [r["param_bytes"] for r in ddp.ranks] == [full, full]
    assert [r["optimizer_bytes"] for r in ddp.ranks] == [single.ranks[0]["optimizer_bytes"]] * 2
    assert ddp.ranks[0]["weights_sha256"] == ddp.ranks[1]["weights_sha256"]


def test_fsdp_ranks_hold_about_half(runs):
    single, _, fsdp = runs
    full_p, full_o = single.ranks[0]["param_bytes"], single.ranks[0]["optimizer_bytes"]
    for r in fsdp.ranks:
        assert r["full_param_bytes"] == full_p
        assert 0.45 < r["param_bytes"] / full_p < 0.55
        assert 0.45 < r["optimizer_bytes"] / full_o < 0.55
    assert sum(r["param_bytes"] for r in fsdp.ranks) >= full_p  # shards cover every weight


def test_fsdp_ranks_store_different_shards_that_make_up_the_weights(runs):
    """What each rank itself stores (not what it can all-gather): halves that differ."""
    _, ddp, fsdp = runs
    assert fsdp.ranks[0]["local_sha256"] != fsdp.ranks[1]["local_sha256"]
    assert ddp.ranks[0]["local_sha256"] == ddp.ranks[1]["local_sha256"]  # full replicas
    local0, local1 = fsdp.local_states
    for name, full in fsdp.final_state.items():
        # FSDP2 splits every tensor along dim 0; rank 0 takes the first ceil(n/2) rows
        assert local0[name].shape[0] == -(-full.shape[0] // 2)
        assert torch.equal(torch.cat([local0[name], local1[name]]), full)


def test_same_losses_and_weights_as_one_process(runs):
    """Not bit-identical (sums in another order), but the losses agree to float32 rounding
    and every weight to a small fraction of one Adam step (the chapter's claim)."""
    single, ddp, fsdp = runs
    ref = torch.tensor(single.ranks[0]["losses"])
    lr = 1e-3
    for run in (ddp, fsdp):
        for r in run.ranks:
            # a few float32 ulps of a loss near 4: 4 * 2**-21
            torch.testing.assert_close(torch.tensor(r["losses"]), ref, rtol=0, atol=2e-6)
        assert run.final_state.keys() == single.final_state.keys()
        for name, w in single.final_state.items():
            # Adam divides by sqrt(v): a near-zero gradient summed in another order can move a
            # weight by a visible fraction of one step, so allow 2% of a step (lr = 1e-3)
            torch.testing.assert_close(run.final_state[name], w, rtol=0, atol=0.02 * lr)
    assert not torch.equal(single.final_state["lm_head.weight"],
                           D.build_model(D.Job(model=JOB)).lm_head.weight)  # it did train


def test_fork_start_method_gives_the_same_run(runs):
    _, ddp, _ = runs
    forked = D.run_distributed(D.Job(strategy="ddp", model=JOB, steps=3), start_method="fork")
    assert [r["weights_sha256"] for r in forked.ranks] == [r["weights_sha256"] for r in ddp.ranks]


def test_collectives_demo():
    ranks = D.collectives_demo(world_size=2, n=4, start_method="fork")
    before = torch.tensor([r["before"] for r in ranks])
    total = before.sum(0)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert not torch.equal(before[0], before[1])
    for r in ranks:
        assert torch.equal(torch.tensor(r["all_reduce"]), total)
        assert torch.equal(torch.tensor(r["all_gather"]), total)
    assert torch.equal(torch.tensor(ranks[0]["reduce_scatter"] + ranks[1]["reduce_scatter"]),
                       total)
    for bad in ({"world_size": 1}, {"n": 3}, {"n": 0}, {"start_method": "thread"},
                {"world_size": 2.0}):
        with pytest.raises(ValueError):
            D.collectives_demo(**bad)


def test_weights_digest_and_tensor_bytes():
    a = {"w": torch.zeros(3), "b": torch.ones(2)}
    b = {"w": torch.zeros(3), "b": torch.tensor([1.0, 1.0 + 2**-20])}
    assert D.weights_digest(a) == D.weights_digest(dict(reversed(list(a.items()))))
    assert D.weights_digest(a) != D.weights_digest(b)
    assert tensor_bytes(a.values()) == 20


def test_free_port_is_bindable():
    import socket

    port = D.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.parametrize("kwargs", [{"strategy": "zero4"}, {"world_size": 0},
                                    {"batch_size": 7, "world_size": 2}, {"steps": -1},
                                    {"lr": 0.0}, {"block_size": 1.5},
                                    {"lr": float("nan")}, {"optimizer": "adam"},
                                    {"optimizer": ["sgd"]}])
def test_bad_jobs(kwargs):
    with pytest.raises(ValueError):
        D.Job(**kwargs)


def test_an_sgd_job_takes_plain_steps():
    """optimizer="sgd": one step moves every weight by exactly -lr times its gradient."""
    job = D.Job(strategy="single", model=JOB, steps=1, lr=0.5, optimizer="sgd")
    tokens = D.random_tokens(job)
    run = D.run_distributed(job, tokens)
    model = D.build_model(job)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = D.make_batches(job, tokens)[0]
    model(x, y)[1].backward()
    for name, p in model.named_parameters():
        assert torch.allclose(run.final_state[name], start[name] - 0.5 * p.grad,
                              rtol=0, atol=1e-6), name
    assert any(not torch.equal(run.final_state[k], w) for k, w in start.items())


def test_bad_run_arguments():
    with pytest.raises(ValueError, match="tokens"):
        D.run_distributed(D.Job(strategy="single", model=JOB), torch.zeros(10))
    with pytest.raises(ValueError, match="same world_size"):
        D.run_distributed([D.Job(strategy="ddp", model=JOB),
                           D.Job(strategy="fsdp", model=JOB, world_size=4, batch_size=8)])
    with pytest.raises(ValueError):
        D.run_distributed([])
    with pytest.raises(ValueError, match="start_method"):
        D.run_distributed(D.Job(model=JOB), start_method="thread")


def test_cli_without_torchrun_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit) as exc:
        D.main(["--out", str(tmp_path)])
    assert exc.value.code == 2 and "torchrun" in capsys.readouterr().err


def test_torchrun(tmp_path):
    """The same code under torchrun, as on a cluster (here: 2 local processes)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "course_lib.distributed", "--strategy", "fsdp", "--steps", "2",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
    assert reports[0]["param_bytes"] < reports[0]["full_param_bytes"]
    assert (tmp_path / "final.safetensors").exists()


def test_holdings_match_zero_memory_and_the_diagram_draws_them():
    import matplotlib

    matplotlib.use("Agg")
    from course_lib import memory as M
    from course_lib.plots import data_parallel_diagram

    width = {"weights": 2, "gradients": 2, "optimizer": 12}
    for stage, strategy in enumerate(D.HOLDINGS):
        for n in (1, 2, 4):
            grid = D.holdings(strategy, n)
            for dev in range(n):
                per_param = sum(w * len(grid[k][dev]) / n for k, w in width.items())
                assert per_param * 1e9 == M.zero_memory(1e9, n, stage)
            # every slice of every part is stored somewhere
            assert all({s for dev in grid[k] for s in dev} == set(range(n)) for k in width)
    fig = data_parallel_diagram({s: D.holdings(s, 2) for s in D.HOLDINGS}, D.TRAFFIC)
    assert len(fig.axes) == 4 * 2
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert "ZeRO-2: device 1  (9 B/param)" in titles
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "sends: " + D.TRAFFIC["DDP"] in texts
    with pytest.raises(ValueError):
        D.holdings("ZeRO-4", 2)
    with pytest.raises(ValueError, match="data_parallel_diagram: holdings"):
        data_parallel_diagram({})
    uneven = {"DDP": D.holdings("DDP", 2), "ZeRO-1": D.holdings("ZeRO-1", 4)}
    with pytest.raises(ValueError, match="same 1..64 devices"):
        data_parallel_diagram(uneven)
    with pytest.raises(ValueError, match="not slice numbers in 0..1"):
        data_parallel_diagram({"DDP": {**D.holdings("DDP", 2), "weights": [[0], [2]]}})
    with pytest.raises(TypeError, match="data_parallel_diagram: traffic"):
        data_parallel_diagram({"DDP": D.holdings("DDP", 2)}, ["all-reduce"])


def test_rank_loop_source_shows_the_wrapping_and_the_loop():
    text = D.rank_loop_source()
    lines = text.splitlines()
    assert lines[0].startswith("# course_lib/distributed.py:")
    assert "model = build_model(job)" in lines[1]
    assert "losses.append" in lines[-1]
    for step in ("DistributedDataParallel(model)", "fully_shard(block", "loss.backward()",
                 "opt.step()"):
        assert step in text, step
