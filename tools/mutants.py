"""Break the chapter 5-7 kernels on purpose, one realistic bug at a time, and check that the
unit tests notice (CONTRIBUTING.md: "break it on purpose once and watch the test fail").

Each mutant is ``(module path, exact old snippet, new snippet, test files, description)``.
For each one the runner copies ``course_lib/`` and ``tests/`` (with the root ``conftest.py``,
``pyproject.toml`` and ``_toc.yml``; ``book/`` is linked) into a temporary directory, replaces
the old snippet by the new one in the copy (it must occur exactly once, or the run stops),
and runs the named test files there with ``PYTHONPATH`` set to the copy; a small plugin checks,
inside that pytest process and before any test, that the module comes from the copy. A
mutant is *caught* when the tests fail, *survives* when they pass. First, each test file
runs once on an unmutated copy: a mutant whose tests already fail there is reported as an
error, not a catch (such a "catch" would prove nothing).

    .venv/bin/python tools/mutants.py              # every mutant; exit 1 if any survives
    .venv/bin/python tools/mutants.py --list       # names and descriptions
    .venv/bin/python tools/mutants.py --only peft.scaling_floor_division --only 'rag.*'
    .venv/bin/python tools/mutants.py --check      # only check that every snippet applies
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED_FILES = ("conftest.py", "pyproject.toml", "_toc.yml")
LINKED_DIRS = ("book",)   # read by rag.corpora (the book index); never written by the tests
TIMEOUT_S = 900


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str            # relative to the repository root
    old: str             # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]
    description: str


def M(name, path, old, new, tests, description) -> Mutant:
    tests = (tests,) if isinstance(tests, str) else tuple(tests)
    return Mutant(name, path, old, new, tuple(f"tests/{t}" for t in tests), description)


PEFT, ALIGN, SPEC = "course_lib/peft.py", "course_lib/align.py", "course_lib/speculative.py"
METRICS, SPARSE = "course_lib/rag/metrics.py", "course_lib/rag/sparse.py"
DENSE, CHUNKING = "course_lib/rag/dense.py", "course_lib/rag/chunking.py"
PRUNE, GPTQ = "course_lib/prune.py", "course_lib/gptq.py"
DISTILL, EVALUATE = "course_lib/distill.py", "course_lib/evaluate.py"
AGENT_TOOLS, AGENT_REACT = "course_lib/agent/tools.py", "course_lib/agent/react.py"

MUTANTS: list[Mutant] = [
    # ---------------------------------------------------------------- peft (chapter 5)
    M("peft.scaling_floor_division", PEFT,
      "self.scaling = self.alpha / self.r", "self.scaling = self.alpha // self.r",
      "test_peft.py", "LoRA scale alpha // r: right whenever r divides alpha"),
    M("peft.forward_unscaled", PEFT,
      "return self.base(x) + self.scaling * update", "return self.base(x) + update",
      "test_peft.py", "LoRA forward forgets the alpha / r scale"),
    M("peft.merge_always_bias", PEFT,
      "bias=bias is not None)", "bias=True)",
      "test_peft.py", "merge gives every merged Linear a (randomly initialised) bias"),
    M("peft.merge_delta_unscaled", PEFT,
      "merged.weight.copy_(mod.base_weight().float() + mod.delta_weight())",
      "merged.weight.copy_(mod.base_weight().float() + mod.lora_B @ mod.lora_A)",
      "test_peft.py", "merge adds B @ A without the alpha / r scale"),
    M("peft.targets_suffix_without_dot", PEFT,
      'name == t or name.endswith("." + t)', "name.endswith(t)",
      "test_peft.py", "apply_lora matches a target as a bare suffix ('proj' wraps 'q_proj')"),
    # ---------------------------------------------------------------- align (chapter 5)
    M("align.prompt_mask_off_by_one", ALIGN,
      "y[i, : n_prompt - 1] = -100", "y[i, : n_prompt] = -100",
      "test_align.py", "response-only SFT also masks the first response token"),
    M("align.logprobs_count_padding", ALIGN,
      "return (picked * keep).sum(dim=-1)", "return picked.sum(dim=-1)",
      "test_align.py", "sequence_logprobs adds the log-probabilities of masked positions"),
    M("align.dpo_swapped_references", ALIGN,
      "margin = (policy_chosen_logps - ref_chosen_logps)",
      "margin = (policy_chosen_logps - ref_rejected_logps)",
      "test_align.py", "DPO subtracts the rejected response's reference log-prob from the chosen"),
    M("align.dpo_beta_divides", ALIGN,
      "-F.logsigmoid(beta * margin).mean()", "-F.logsigmoid(margin / beta).mean()",
      "test_align.py", "DPO divides the margin by beta"),
    M("align.reward_loss_sum", ALIGN,
      "-F.logsigmoid(chosen_rewards - rejected_rewards).mean()",
      "-F.logsigmoid(chosen_rewards - rejected_rewards).sum()",
      "test_align.py", "Bradley-Terry loss summed over the batch, not averaged"),
    # ---------------------------------------------------------------- speculative (chapter 6)
    M("speculative.bonus_from_last_verified", SPEC,
      "_probs(t_logits[k], temperature)", "_probs(t_logits[k - 1], temperature)",
      "test_speculative.py",
      "all k accepted: the bonus token is sampled from the last draft position's distribution"),
    M("speculative.residual_abs", SPEC,
      "(p - q_list[accepted]).clamp(min=0)", "(p - q_list[accepted]).abs()",
      "test_speculative.py", "rejection resamples from |p - q| instead of max(0, p - q)"),
    M("speculative.residual_is_target", SPEC,
      "residual = (p - q_list[accepted]).clamp(min=0)", "residual = p",
      "test_speculative.py", "rejection resamples from p itself, not from max(0, p - q)"),
    M("speculative.ratio_inverted", SPEC,
      "p[token] / q_list[i][token]", "q_list[i][token] / p[token]",
      "test_speculative.py", "acceptance test uses q / p instead of p / q"),
    M("speculative.acceptance_rate_sums_all", SPEC,
      "return torch.minimum(p, q).sum(-1)", "return torch.minimum(p, q).sum()",
      "test_speculative.py", "acceptance_rate sums over every dimension, not per row"),
    M("speculative.greedy_extra_off_by_one", SPEC,
      "extra = int(t_logits[accepted].argmax())", "extra = int(t_logits[accepted - 1].argmax())",
      "test_speculative.py", "greedy: the correction token is read one position early"),
    # ---------------------------------------------------------------- rag.metrics (chapter 7)
    M("rag.metrics.recall_divides_by_k", METRICS,
      "/ len(rel)", "/ min(len(rel), k)",
      "test_rag.py", "recall@k divides by min(|relevant|, k)"),
    M("rag.metrics.ndcg_ideal_ignores_k", METRICS,
      "range(1, min(len(rel), k) + 1)", "range(1, len(rel) + 1)",
      "test_rag.py", "nDCG's ideal DCG counts every relevant item, even past rank k"),
    M("rag.metrics.mrr_ignores_k", METRICS,
      'top = ranked if k is None else ranked[:_k(k, "mrr")]', "top = ranked",
      "test_rag.py", "MRR@k looks past rank k"),
    M("rag.metrics.rrf_rank_from_zero", METRICS,
      "enumerate(ranking, start=1)", "enumerate(ranking)",
      "test_rag.py", "reciprocal rank fusion counts ranks from 0"),
    # ---------------------------------------------------------------- rag.sparse
    M("rag.sparse.idf_without_smoothing", SPARSE,
      "math.log(f + 0.5)", "math.log(f)",
      "test_rag.py", "BM25 idf without the +0.5 in the document frequency"),
    M("rag.sparse.length_norm_inverted", SPARSE,
      "self.b * dl / self.avgdl", "self.b * self.avgdl / dl",
      "test_rag.py", "BM25 length normalisation inverted (long documents favoured)"),
    M("rag.sparse.negative_idf_to_zero", SPARSE,
      "(v if v >= 0 else floor)", "(v if v >= 0 else 0.0)",
      "test_rag.py", "terms in over half the documents get idf 0, not epsilon * mean idf"),
    # ---------------------------------------------------------------- rag.dense
    M("rag.dense.norm_over_wrong_axis", DENSE,
      "np.linalg.norm(v, axis=-1, keepdims=True)", "np.linalg.norm(v, axis=0, keepdims=True)",
      "test_rag.py", "unit vectors normalised along axis 0: token vectors are not unit length"),
    M("rag.dense.search_ascending", DENSE,
      'np.argsort(-s, kind="stable")', 'np.argsort(s, kind="stable")',
      "test_rag.py", "dense search returns the least similar items first"),
    M("rag.dense.maxsim_over_doc_tokens", DENSE,
      "(q @ d.T).max(axis=1).sum()", "(q @ d.T).max(axis=0).sum()",
      "test_rag.py", "MaxSim lets each document token take its best query token"),
    # ---------------------------------------------------------------- rag.chunking
    M("rag.chunking.char_step_ignores_overlap", CHUNKING,
      "        step = size - overlap\n        windows = []",
      "        step = size\n        windows = []",
      "test_rag.py", "character chunks advance by size: no overlap"),
    M("rag.chunking.window_end_off_by_one", CHUNKING,
      "spans[min(i + size, len(spans)) - 1][1]", "spans[min(i + size, len(spans) - 1)][1]",
      "test_rag.py", "token/sentence windows take one unit too many"),
    # ---------------------------------------------------------------- prune (chapter 6)
    M("prune.count_from_d_out", PRUNE,
      "round(sparsity * weight.shape[1])", "round(sparsity * weight.shape[0])",
      "test_prune.py", "weights to drop per row counted from d_out, not d_in"),
    M("prune.wanda_signed_weights", PRUNE,
      "weight.abs() * norms[None, :]", "weight * norms[None, :]",
      "test_prune.py", "Wanda scores w * ||x|| without the absolute value"),
    M("prune.wanda_l1_norm", PRUNE,
      "inputs.double().norm(dim=0)", "inputs.double().abs().sum(dim=0)",
      "test_prune.py", "Wanda uses the L1 norm of the inputs instead of the L2 norm"),
    M("prune.n_m_drops_n", PRUNE,
      "torch.topk(groups, m - n, dim=-1, largest=False)",
      "torch.topk(groups, n, dim=-1, largest=False)",
      "test_prune.py", "N:M drops n per group instead of m - n (right only for 2:4)"),
    # ---------------------------------------------------------------- gptq (chapter 6)
    M("gptq.range_without_zero", GPTQ,
      "lo = w.amin(dim=1, keepdim=True).clamp(max=0)", "lo = w.amin(dim=1, keepdim=True)",
      "test_gptq.py", "min-max grid not stretched to include 0"),
    M("gptq.zero_point_not_rounded", GPTQ,
      "zero = torch.round(-lo / scale)", "zero = -lo / scale",
      "test_gptq.py", "zero point left fractional: 0 is no longer exactly representable"),
    M("gptq.lazy_update_sign", GPTQ,
      "w[:, i2:] -= err1 @ u[i1:i2, i2:]", "w[:, i2:] += err1 @ u[i1:i2, i2:]",
      "test_gptq.py", "the lazy update of later blocks has the wrong sign"),
    M("gptq.act_order_unpermuted_wrongly", GPTQ,
      "out = out[:, torch.argsort(perm)]", "out = out[:, perm]",
      "test_gptq.py", "act-order output permuted with perm instead of its inverse"),
    # ---------------------------------------------------------------- distill (chapter 6)
    M("distill.t_not_squared", DISTILL,
      "soft = kl * temperature**2", "soft = kl * temperature",
      "test_distill.py", "soft term scaled by T instead of T^2"),
    M("distill.kl_reversed", DISTILL,
      "(log_p_teacher.exp() * (log_p_teacher - log_p_student))",
      "(log_p_student.exp() * (log_p_student - log_p_teacher))",
      "test_distill.py", "KL(student || teacher) instead of KL(teacher || student)"),
    M("distill.teacher_not_softened", DISTILL,
      "F.log_softmax(t.float() / temperature, dim=-1)", "F.log_softmax(t.float(), dim=-1)",
      "test_distill.py", "the teacher's logits are not divided by the temperature"),
    # ---------------------------------------------------------------- evaluate (chapters 5, 6)
    M("evaluate.articles_without_an", EVALUATE,
      'ARTICLES = frozenset({"a", "an", "the"})', 'ARTICLES = frozenset({"a", "the"})',
      "test_evaluate.py", "normalize_answer keeps 'an'"),
    M("evaluate.exact_match_substring", EVALUATE,
      "normalize_answer(p) == normalize_answer(a)", "normalize_answer(p) in normalize_answer(a)",
      "test_evaluate.py", "exact match accepts a prediction contained in the answer"),
    M("evaluate.wilson_half_width", EVALUATE,
      "z * z / (4 * n * n)", "z * z / (4 * n)",
      "test_evaluate.py", "Wilson half-width with z^2 / 4n instead of z^2 / 4n^2"),
    M("evaluate.mcnemar_one_tail", EVALUATE,
      "tail = min(k, n - k)", "tail = k",
      "test_evaluate.py", "McNemar's p-value from A's tail even when A wins the majority"),
    M("evaluate.mcnemar_counts_all_items", EVALUATE,
      "return _fair_coin_two_sided_p(only_a, only_a + only_b)",
      "return _fair_coin_two_sided_p(only_a, len(a))",
      "test_evaluate.py", "McNemar counts concordant items as trials too"),
    M("evaluate.bootstrap_one_sided", EVALUATE,
      'alpha = (1 - _confidence("paired_bootstrap", confidence)) / 2',
      'alpha = 1 - _confidence("paired_bootstrap", confidence)',
      "test_evaluate.py", "bootstrap interval cuts 5% from each side for 95% confidence"),
    # ---------------------------------------------------------------- agent (chapter 7)
    M("agent.calculator_allows_xor_as_power", AGENT_TOOLS,
      "ast.Pow: operator.pow}", "ast.Pow: operator.pow, ast.BitXor: operator.pow}",
      "test_agent_mutants.py",
      "calculator reads ^ as power (and skips the exponent bound that ** has)"),
    M("agent.calculator_allows_shift", AGENT_TOOLS,
      "ast.Pow: operator.pow}", "ast.Pow: operator.pow, ast.LShift: operator.lshift}",
      "test_agent_mutants.py", "calculator whitelist grows a left shift"),
    M("agent.calculator_allows_not", AGENT_TOOLS,
      "_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}",
      "_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_}",
      "test_agent_mutants.py", "calculator whitelist grows 'not'"),
    M("agent.calculator_ignores_keywords", AGENT_TOOLS,
      "and not node.keywords and 1 <= len(node.args) <= 2",
      "and 1 <= len(node.args) <= 2",
      "test_agent_mutants.py", "calculator calls a function with its keyword arguments dropped"),
    M("agent.final_answer_wins_over_earlier_action", AGENT_REACT,
      "if final and (not action or final.start() < action.start()):", "if final:",
      "test_agent_mutants.py",
      "parse_step takes a later 'Final Answer:' over the action written before it"),
    M("agent.loop_one_step_short", AGENT_REACT,
      "for _ in range(self.max_steps):", "for _ in range(self.max_steps - 1):",
      "test_agent_mutants.py", "the ReAct loop stops one step before max_steps"),
]


def select(names: list[str] | None) -> list[Mutant]:
    if not names:
        return list(MUTANTS)
    chosen = [m for m in MUTANTS if any(fnmatch.fnmatchcase(m.name, n) for n in names)]
    unknown = [n for n in names if not any(fnmatch.fnmatchcase(m.name, n) for m in MUTANTS)]
    if unknown:
        sys.exit(f"mutants.py: no mutant named {unknown}; see --list")
    return chosen


def check_snippet(m: Mutant, root: Path = REPO) -> str:
    """The file's text; stops the run unless ``m.old`` occurs exactly once in it."""
    path = root / m.path
    if not path.is_file():
        sys.exit(f"mutants.py: {m.name}: {m.path} does not exist")
    text = path.read_text(encoding="utf-8")
    count = text.count(m.old)
    if count != 1:
        sys.exit(f"mutants.py: {m.name}: the old snippet occurs {count} times in {m.path} "
                 f"(must be exactly once); update the mutant list:\n{m.old}")
    return text


def make_copy() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="mutant-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "course_lib", tmp / "course_lib", ignore=ignore)
    shutil.copytree(REPO / "tests", tmp / "tests", ignore=ignore)
    for name in COPIED_FILES:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, tmp / name)
    for name in LINKED_DIRS:
        if (REPO / name).exists():
            (tmp / name).symlink_to(REPO / name, target_is_directory=True)
    (tmp / "_mutant_check.py").write_text(CHECK_PLUGIN, encoding="utf-8")
    return tmp


def env_for(copy: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# Written into the copy and loaded with ``-p``: before any test runs, the pytest process
# itself imports the mutated module and stops (exit status 4) unless it is the copy's file.
CHECK_PLUGIN = """\
import importlib, os, pathlib, pytest

def pytest_sessionstart(session):
    for module, path in zip(os.environ["MUTANT_MODULES"].split(","),
                            os.environ["MUTANT_FILES"].split(",")):
        got = pathlib.Path(importlib.import_module(module).__file__).resolve()
        if got != pathlib.Path(path).resolve():
            raise pytest.UsageError(f"MUTANT-CHECK: {module} was imported from {got}, "
                                    f"not from the copy {path}")
"""


def module_name(module_path: str) -> str:
    return module_path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def run_tests(copy: Path, tests: tuple[str, ...], modules: list[str]
              ) -> tuple[int, str, float]:
    """Run ``tests`` in ``copy``; the run stops first unless ``modules`` (paths) import from
    the copy."""
    env = env_for(copy)
    env["MUTANT_MODULES"] = ",".join(module_name(m) for m in modules)
    env["MUTANT_FILES"] = ",".join(str(copy / m) for m in modules)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
           "-p", "_mutant_check", "-o", "addopts=", *tests]
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True,
                             timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_S} s", time.perf_counter() - start
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    checked = [ln for ln in lines if "MUTANT-CHECK:" in ln]
    summary = (checked or failed or lines[-1:] or ["(no output)"])[0]
    return out.returncode, summary, time.perf_counter() - start


def baseline(mutants: list[Mutant], keep: bool, jobs: int) -> set[str]:
    """Run each test file once on an unmutated copy; return the files that fail there."""
    copy = make_copy()
    modules = list(dict.fromkeys(m.path for m in mutants))
    tests = list(dict.fromkeys(t for m in mutants for t in m.tests))

    def one(test: str) -> bool:
        rc, summary, seconds = run_tests(copy, (test,), modules)
        print(f"baseline  {test:<42} {seconds:5.0f} s  {summary[:110]}", flush=True)
        return rc != 0

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return {t for t, bad in zip(tests, pool.map(one, tests)) if bad}
    finally:
        if not keep:
            shutil.rmtree(copy, ignore_errors=True)


def run_mutant(m: Mutant, keep: bool) -> tuple[str, str, float]:
    check_snippet(m)
    copy = make_copy()
    try:
        target = copy / m.path
        text = check_snippet(m, copy)
        target.write_text(text.replace(m.old, m.new, 1), encoding="utf-8")
        rc, summary, seconds = run_tests(copy, m.tests, [m.path])
    finally:
        if keep:
            print(f"  kept {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)
    # pytest: 0 all passed, 1 some test failed; anything else (collection error, timeout,
    # no tests) is reported as an error, not counted as a catch
    status = {0: "SURVIVED", 1: "caught"}.get(rc, f"ERROR rc={rc}")
    return status, summary, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this mutant (a shell pattern such as 'rag.*' works); "
                             "may be repeated")
    parser.add_argument("--check", action="store_true",
                        help="only check that every old snippet occurs exactly once")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the run of the test files on the unmutated code")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                        help="run N mutants at a time (default 1; each runs one pytest)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    mutants = select(args.only)
    if args.list:
        width = max(len(m.name) for m in mutants)
        for m in mutants:
            print(f"{m.name:<{width}}  {m.path}: {m.description}")
        return 0
    for m in mutants:
        check_snippet(m)
    if args.check:
        print(f"all {len(mutants)} snippets occur exactly once")
        return 0
    failing = set() if args.no_baseline else baseline(mutants, args.keep, args.jobs)

    def one(m: Mutant) -> str:
        if failing.intersection(m.tests):  # a failure would prove nothing about the mutant
            print(f"{'ERROR':<9} {m.name:<42} skipped: its tests fail without the mutant")
            return "ERROR: tests fail without the mutant"
        status, summary, seconds = run_mutant(m, args.keep)
        print(f"{status:<9} {m.name:<42} {seconds:5.0f} s  {summary[:110]}", flush=True)
        return status

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:   # each mutant is a subprocess
        rows = list(zip(mutants, pool.map(one, mutants)))
    survived = [m.name for m, s in rows if s != "caught"]
    print("\n| mutant | module | what it breaks | result |\n|---|---|---|---|")
    for m, s in rows:
        text = m.description.replace("|", "\\|")   # |p - q| must not split the table cell
        print(f"| `{m.name}` | `{m.path}` | {text} | {s} |")
    print(f"\n{len(rows) - len(survived)} of {len(rows)} mutants caught"
          + (f"; not caught: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
