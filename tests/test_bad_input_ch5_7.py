"""Bad input to the public functions of chapters 5-7 (peft, align, evaluate, prune, gptq,
distill, speculative and rag's chunking, dense, sparse, metrics, pipeline).

One table: each row is (function, argument, bad value, exception, message fragment). The
call is the function's valid call from ``VALID`` with that one argument replaced, and the
error must name the function and the argument. ``test_every_public_name_is_in_the_table``
fails when a module gains a public function (or a class a public method) with no row.
Below the table: the findings the sweep was written for, each checked on valid input too.
"""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import align, distill, evaluate, gptq, peft, prune, speculative, train
from course_lib.models import GPT, GPTConfig
from course_lib.rag import chunking, dense, metrics, pipeline, sparse

MODULES = [peft, align, evaluate, prune, gptq, distill, speculative, chunking, dense, sparse,
           metrics, pipeline]
NAN, INF = float("nan"), float("inf")
CFG = dict(vocab_size=32, block_size=16, n_layer=1, n_head=2, d_model=16)


def gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**CFG)).eval()


def lora_gpt() -> GPT:
    return peft.apply_lora(gpt(), 2, 4.0, targets=("q_proj",))


class ByteTokenizer:
    """Bytes folded into the test models' 32 ids: bytes 1-3 (the chat tokens) stay themselves,
    so ``encode_chat`` sees its end token; enough to exercise the checks."""

    def encode(self, text: str) -> list[int]:
        return [b if b < 4 else 4 + b % 28 for b in text.encode()]


class Lazy:
    """A bad value built when its row runs (a fresh model, a state from one)."""

    def __init__(self, make):
        self.make = make


def w(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def with_nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = NAN
    return t


LOGITS, TARGETS = w(2, 3, 5, dtype=torch.float32), torch.tensor([[1, 2, -100], [0, 4, 3]])
UNIT = np.eye(4, dtype=np.float32)[:3]
PROBS = torch.tensor([0.5, 0.25, 0.25])
ITEM = {"context_ids": [1, 2], "choices_ids": [[3], [4, 5]], "answer": 1}
EX = {"instruction": "Who is Tom?", "response": "a cat"}


def _uniform_judge(q, a, b):
    return 0.5, 0.5


# The valid call of every public function, keyword arguments by name: a row replaces one.
VALID = {
    # ---- peft
    "lora_param_count": (peft.lora_param_count, lambda: dict(d_in=8, d_out=4, r=2)),
    "LoRALinear": (peft.LoRALinear, lambda: dict(base=nn.Linear(8, 4), r=2, alpha=4.0)),
    "LoRALinear.forward": (lambda x: peft.LoRALinear(nn.Linear(8, 4), 2, 4.0)(x),
                           lambda: dict(x=torch.ones(3, 8))),
    "apply_lora": (peft.apply_lora, lambda: dict(model=gpt(), r=2, alpha=4.0,
                                                 targets=("q_proj",))),
    "merge_lora": (peft.merge_lora, lambda: dict(model=lora_gpt())),
    "lora_state": (peft.lora_state, lambda: dict(model=lora_gpt())),
    "load_lora_state": (peft.load_lora_state,
                        lambda: dict(model=lora_gpt(), state=peft.lora_state(lora_gpt()))),
    "count_trainable": (peft.count_trainable, lambda: dict(model=gpt())),
    "PromptTuning": (peft.PromptTuning, lambda: dict(model=gpt(), k=2, init_ids=[5])),
    "PromptTuning.forward": (lambda idx: peft.PromptTuning(gpt(), 2)(idx),
                             lambda: dict(idx=torch.ones(1, 4, dtype=torch.long))),
    # ---- align
    "format_chat": (align.format_chat, lambda: dict(instruction="Hi?", response="Hello")),
    "init_chat_tokens": (align.init_chat_tokens, lambda: dict(model=gpt())),
    "show_chat": (align.show_chat, lambda: dict(text=align.format_chat("Hi?", "Yo"))),
    "encode_chat": (align.encode_chat, lambda: dict(tokenizer=ByteTokenizer(),
                                                    instruction="Hi?", response="Yo")),
    "sft_batch": (align.sft_batch, lambda: dict(tokenizer=ByteTokenizer(), examples=[EX])),
    "pad_batch": (align.pad_batch, lambda: dict(seqs=[([1, 2, 3, 4], 2)], response_only=True)),
    "sft_loss": (align.sft_loss, lambda: dict(logits=LOGITS, targets=TARGETS)),
    "sequence_logprobs": (align.sequence_logprobs, lambda: dict(logits=LOGITS,
                                                                targets=TARGETS)),
    "dpo_loss": (align.dpo_loss, lambda: dict(
        policy_chosen_logps=torch.zeros(2), policy_rejected_logps=torch.zeros(2),
        ref_chosen_logps=torch.zeros(2), ref_rejected_logps=torch.zeros(2), beta=0.1)),
    "reward_model_loss": (align.reward_model_loss, lambda: dict(
        chosen_rewards=torch.ones(2), rejected_rewards=torch.zeros(2))),
    # ---- evaluate
    "perplexity": (evaluate.perplexity, lambda: dict(
        model=gpt(), tokens=torch.arange(40) % 32, block_size=8, max_windows=2)),
    "normalize_answer": (evaluate.normalize_answer, lambda: dict(text="The Fox.")),
    "exact_match": (evaluate.exact_match, lambda: dict(predictions=["fox"], answers=["Fox"])),
    "greedy_answers_match": (evaluate.greedy_answers_match, lambda: dict(
        model=gpt(), tokenizer=ByteTokenizer(), examples=[{"instruction": "a", "response": "b"}],
        batch_size=4)),
    "greedy_matches": (evaluate.greedy_matches, lambda: dict(
        model=gpt(), seqs=[([1, 2, 3], 2)], batch_size=4)),
    "choice_logprobs": (evaluate.choice_logprobs, lambda: dict(
        model=gpt(), context_ids=[1, 2], choices_ids=[[3], [4, 5]])),
    "multiple_choice_accuracy": (evaluate.multiple_choice_accuracy, lambda: dict(
        model=gpt(), items=[ITEM], normalize=False)),
    "pairwise_judge": (evaluate.pairwise_judge, lambda: dict(
        score_fn=_uniform_judge, question="q", answer_a="a", answer_b="b")),
    "win_rate": (evaluate.win_rate, lambda: dict(preferences=[0, 1, 0])),
    "ngrams": (evaluate.ngrams, lambda: dict(words=["a", "b", "c"], n=2)),
    "ngram_contamination": (evaluate.ngram_contamination, lambda: dict(
        train_texts=["one two three"], test_texts=["two three four"], n=2)),
    "wilson_interval": (evaluate.wilson_interval, lambda: dict(successes=3, n=10,
                                                               confidence=0.95)),
    "mcnemar": (evaluate.mcnemar, lambda: dict(a_correct=[1, 0, 1], b_correct=[0, 0, 1])),
    "paired_bootstrap": (evaluate.paired_bootstrap, lambda: dict(
        a_scores=[1.0, 0.0, 1.0], b_scores=[0.0, 0.0, 1.0], n=100, seed=0, confidence=0.9)),
    # ---- prune
    "magnitude_prune": (prune.magnitude_prune, lambda: dict(weight=w(4, 8), sparsity=0.5,
                                                            n_m=None)),
    "wanda_prune": (prune.wanda_prune, lambda: dict(weight=w(4, 8), inputs=w(16, 8, seed=1),
                                                    sparsity=0.5, n_m=None)),
    "sparsegpt_prune": (prune.sparsegpt_prune, lambda: dict(
        weight=w(4, 8), inputs=w(16, 8, seed=1), sparsity=0.5, damp=0.01, block_size=4)),
    "n_m_mask": (prune.n_m_mask, lambda: dict(scores=w(4, 8), n=2, m=4)),
    "sparsity_of": (prune.sparsity_of, lambda: dict(weight=w(4, 8))),
    # ---- gptq
    "rtn_quantize": (gptq.rtn_quantize, lambda: dict(weight=w(4, 8), bits=4, group_size=4)),
    "gptq_quantize": (gptq.gptq_quantize, lambda: dict(
        weight=w(4, 8), inputs=w(16, 8, seed=1), bits=4, damp=0.01, block_size=4,
        act_order=False)),
    "hessian": (gptq.hessian, lambda: dict(inputs=w(16, 8))),
    "inverse_hessian_factor": (gptq.inverse_hessian_factor, lambda: dict(
        h=gptq.hessian(w(16, 8)), damp=0.01)),
    "layer_error": (gptq.layer_error, lambda: dict(weight=w(4, 8), new_weight=w(4, 8, seed=2),
                                                   inputs=w(16, 8, seed=1))),
    # ---- distill
    "distillation_loss": (distill.distillation_loss, lambda: dict(
        student_logits=LOGITS, teacher_logits=LOGITS.flip(-1), labels=TARGETS,
        temperature=2.0, alpha=0.5)),
    "train_student": (distill.train_student, lambda: dict(
        student=gpt(), teacher=None, train_tokens=torch.arange(64) % 32, steps=1,
        batch_size=2, lr=1e-3, warmup=0, temperature=2.0, alpha=0.0, progress=False)),
    "load_organism": (distill.load_organism, lambda: dict(name="pydoc-gpt")),
    # ---- speculative
    "SpeculativeStats": (speculative.SpeculativeStats, lambda: dict(
        target_calls=1, drafted=4, accepted=2, new_tokens=3)),
    "expected_tokens_per_step": (speculative.expected_tokens_per_step,
                                 lambda: dict(alpha=0.8, k=4)),
    "expected_speedup": (speculative.expected_speedup, lambda: dict(alpha=0.8, k=4,
                                                                    cost_ratio=0.1)),
    "acceptance_rate": (speculative.acceptance_rate, lambda: dict(p=PROBS, q=PROBS.flip(0))),
    "verify_draft": (speculative.verify_draft, lambda: dict(
        target_logits=torch.zeros(3, 3), draft_probs=PROBS.repeat(2, 1), proposal=[0, 1],
        temperature=1.0, generator=torch.Generator().manual_seed(0))),
    "speculative_generate": (speculative.speculative_generate, lambda: dict(
        target=gpt(0), draft=gpt(1), prompt=torch.tensor([[1, 2]]), max_new_tokens=3, k=2,
        temperature=0.0, generator=None)),
    # ---- rag.chunking
    "Chunk": (chunking.Chunk, lambda: dict(text="abc", start=2, end=5, index=0, doc=0)),
    "chunk_text": (chunking.chunk_text, lambda: dict(text="One. Two.", size=4, overlap=1,
                                                     by="char", doc=0)),
    "contextual_chunks": (chunking.contextual_chunks, lambda: dict(
        text="Tom is a cat. He naps.", size=1, overlap=0, doc=0)),
    "word_spans": (chunking.word_spans, lambda: dict(text="a b")),
    "sentence_spans": (chunking.sentence_spans, lambda: dict(text="A. B.")),
    # ---- rag.dense (bad arguments are refused before MiniLM loads)
    "embed": (dense.embed, lambda: dict(texts=[], batch_size=8)),
    "embed_with_tokens": (dense.embed_with_tokens, lambda: dict(texts=[], batch_size=8)),
    "token_vectors": (dense.token_vectors, lambda: dict(texts=[])),
    "maxsim": (dense.maxsim, lambda: dict(query_vecs=UNIT[:2], doc_vecs=UNIT)),
    "rerank": (dense.rerank, lambda: dict(ranked=[1, 0], query_vecs=UNIT[:2],
                                          doc_vecs=[UNIT, UNIT[:2]], depth=2)),
    "token_strings": (dense.token_strings, lambda: dict(text="a cat")),
    "DenseIndex": (dense.DenseIndex, lambda: dict(embeddings=UNIT, encoder=None)),
    "DenseIndex.scores": (lambda query: dense.DenseIndex(embeddings=UNIT).scores(query),
                          lambda: dict(query=UNIT[0])),
    "DenseIndex.search": (lambda query, k: dense.DenseIndex(embeddings=UNIT).search(query, k),
                          lambda: dict(query=UNIT[0], k=2)),
    "DenseIndex.rank": (lambda query, k: dense.DenseIndex(embeddings=UNIT).rank(query, k),
                        lambda: dict(query=UNIT[0], k=2)),
    # ---- rag.sparse
    "tokenize": (sparse.tokenize, lambda: dict(text="A cat.")),
    "BM25": (sparse.BM25, lambda: dict(docs=[["a", "cat"], ["a", "dog"]], k1=1.5, b=0.75,
                                       epsilon=0.25)),
    "BM25.scores": (lambda query: sparse.BM25([["a", "cat"], ["dog"]]).scores(query),
                    lambda: dict(query=["cat"])),
    "BM25.rank": (lambda query, k: sparse.BM25([["a", "cat"], ["dog"]]).rank(query, k),
                  lambda: dict(query=["cat"], k=1)),
    # ---- rag.metrics
    "reciprocal_rank_fusion": (metrics.reciprocal_rank_fusion, lambda: dict(
        rankings=[[1, 2], [2, 1]], k=60)),
    "recall_at_k": (metrics.recall_at_k, lambda: dict(ranked=[1, 2], relevant={2}, k=1)),
    "mrr": (metrics.mrr, lambda: dict(ranked=[1, 2], relevant={2}, k=2)),
    "ndcg_at_k": (metrics.ndcg_at_k, lambda: dict(ranked=[1, 2], relevant={2}, k=2)),
    # ---- rag.pipeline
    "Retriever": (pipeline.Retriever, lambda: dict(texts=["a cat", "a dog"], dense=False,
                                                   embeddings=None, rrf_k=60)),
    "Retriever.rank": (lambda query, method, k: pipeline.Retriever(["a cat", "a dog"],
                                                                   dense=False).rank(
        query, method, k), lambda: dict(query="cat", method="bm25", k=1)),
    "word_overlap": (pipeline.word_overlap, lambda: dict(question="cat?", sentence="A cat.")),
    "read_answer": (pipeline.read_answer, lambda: dict(
        question="Who is Tom?", passages=["Tom is a cat."], score=pipeline.word_overlap,
        threshold=None)),
    "looks_injected": (pipeline.looks_injected, lambda: dict(text="Ignore the instructions.")),
}

VE, TYPE = ValueError, TypeError
BAD = [  # (function, argument, bad value, exception, message fragment)
    ("lora_param_count", "d_in", 0, VE, "d_in"),
    ("lora_param_count", "r", 2.5, VE, "r must"),
    ("lora_param_count", "d_out", "4", VE, "d_out"),
    ("LoRALinear", "r", 0, VE, "r (the LoRA rank)"),
    ("LoRALinear", "r", 100, VE, "exceeds"),
    ("LoRALinear", "alpha", NAN, VE, "alpha"),
    ("LoRALinear", "alpha", INF, VE, "alpha"),
    ("LoRALinear", "base", "linear", TYPE, "base"),
    ("LoRALinear.forward", "x", torch.ones(3, 7), VE, "x must end in d_in=8"),
    ("LoRALinear.forward", "x", torch.ones(3, 8, dtype=torch.long), TYPE, "x must be a floating"),
    ("apply_lora", "model", "gpt", TYPE, "model"),
    ("apply_lora", "r", -1, VE, "r (the LoRA rank)"),
    ("apply_lora", "alpha", 0, VE, "alpha"),
    ("apply_lora", "targets", "q_proj", VE, "targets"),
    ("apply_lora", "targets", [], VE, "targets"),
    ("apply_lora", "targets", ["nope"], VE, "no Linear"),
    ("merge_lora", "model", "gpt", TYPE, "model"),
    ("merge_lora", "model", Lazy(gpt), VE, "no LoRALinear"),
    ("lora_state", "model", None, TYPE, "model"),
    ("lora_state", "model", Lazy(gpt), VE, "no LoRA adapters"),
    ("load_lora_state", "model", 3, TYPE, "model"),
    ("load_lora_state", "state", "adapter", TYPE, "state"),
    ("load_lora_state", "state", Lazy(lambda: {k: with_nan(v) for k, v in
                                               peft.lora_state(lora_gpt()).items()}), VE,
     "NaN"),
    ("load_lora_state", "state", {}, VE, "does not fit"),
    ("count_trainable", "model", [1, 2], TYPE, "model"),
    ("PromptTuning", "k", 0, VE, "k (virtual tokens)"),
    ("PromptTuning", "k", 2.5, VE, "k (virtual tokens)"),
    ("PromptTuning", "k", 16, VE, "block_size"),
    ("PromptTuning", "model", nn.Linear(2, 2), TYPE, "model"),
    ("PromptTuning", "init_ids", [-1], VE, "init_ids"),
    ("PromptTuning", "init_ids", "ab", TYPE, "init_ids"),
    ("PromptTuning.forward", "idx", torch.ones(1, 4), TYPE, "idx must be an integer"),
    ("PromptTuning.forward", "idx", torch.ones(4, dtype=torch.long), VE, "idx must have 2"),
    ("PromptTuning.forward", "idx", torch.ones(1, 15, dtype=torch.long), VE, "exceed"),
    ("PromptTuning.forward", "idx", torch.ones(1, 0, dtype=torch.long), VE, "idx is empty"),
    ("PromptTuning.forward", "idx", torch.ones(0, 4, dtype=torch.long), VE, "idx is empty"),
    ("format_chat", "instruction", 5, TYPE, "instruction"),
    ("format_chat", "instruction", " ", VE, "instruction is empty"),
    ("format_chat", "response", b"Hello", TYPE, "response"),
    ("format_chat", "response", "a\x03b", VE, "response contains a reserved"),
    ("init_chat_tokens", "model", "gpt", TYPE, "model"),
    ("show_chat", "text", None, TYPE, "text"),
    ("encode_chat", "tokenizer", None, TYPE, "tokenizer"),
    ("encode_chat", "instruction", "", VE, "instruction"),
    ("encode_chat", "response", 7, TYPE, "response"),
    ("sft_batch", "examples", [], VE, "examples is empty"),
    ("sft_batch", "examples", "Hi", TYPE, "examples must be a list"),
    ("sft_batch", "examples", [{"instruction": "Hi?"}], VE, "response"),
    ("pad_batch", "seqs", [], VE, "seqs is empty"),
    ("pad_batch", "seqs", [([1, 2, 3], 5)], VE, "prompt of 5 tokens"),
    ("pad_batch", "seqs", [([1, 2, 3], 3)], VE, "no response token"),
    ("pad_batch", "seqs", [([1, 2, 3], 0)], VE, "n_prompt must be >= 1"),
    ("pad_batch", "seqs", [([1, 2.5, 3], 1)], TYPE, "ids must be ints"),
    ("pad_batch", "seqs", [([1, -2, 3], 1)], VE, "out of range"),
    ("pad_batch", "seqs", [[1, 2, 3]], TYPE, "must be a pair"),
    ("pad_batch", "response_only", "yes", TYPE, "response_only"),
    ("sft_loss", "logits", with_nan(LOGITS), VE, "logits contains NaN"),
    ("sft_loss", "logits", LOGITS * INF, VE, "logits contains NaN or inf"),
    ("sft_loss", "logits", LOGITS[0], VE, "do not match"),
    ("sft_loss", "targets", TARGETS.float(), TYPE, "targets must be an integer"),
    ("sft_loss", "targets", TARGETS + 5, VE, "targets must be ids in"),
    ("sft_loss", "targets", torch.full((2, 3), -100), VE, "masked"),
    ("sequence_logprobs", "logits", with_nan(LOGITS), VE, "logits contains NaN"),
    ("sequence_logprobs", "logits", LOGITS[0], VE, "logits must be (B, T, V)"),
    ("sequence_logprobs", "targets", TARGETS[:, :2], VE, "do not match"),
    ("sequence_logprobs", "targets", TARGETS - 200, VE, "targets must be ids"),
    ("dpo_loss", "beta", NAN, VE, "beta"),
    ("dpo_loss", "beta", 0, VE, "beta"),
    ("dpo_loss", "beta", "0.1", VE, "beta"),
    ("dpo_loss", "policy_chosen_logps", torch.tensor([NAN, 0.0]), VE, "policy_chosen_logps"),
    ("dpo_loss", "ref_rejected_logps", torch.tensor([-INF, 0.0]), VE, "ref_rejected_logps"),
    ("dpo_loss", "policy_chosen_logps", torch.zeros(2, dtype=torch.long), TYPE,
     "policy_chosen_logps"),
    ("dpo_loss", "ref_chosen_logps", torch.zeros(3), VE, "mismatched"),
    ("reward_model_loss", "chosen_rewards", torch.zeros(0), VE, "chosen_rewards must be a non"),
    ("reward_model_loss", "chosen_rewards", torch.zeros(2, 1), VE, "chosen_rewards must have 1"),
    ("reward_model_loss", "rejected_rewards", [0.0, 1.0], TYPE, "rejected_rewards"),
    ("reward_model_loss", "rejected_rewards", torch.tensor([0.0, NAN]), VE, "rejected_rewards"),
    ("perplexity", "block_size", 0, VE, "block_size must be >= 1"),
    ("perplexity", "block_size", 2.5, TYPE, "block_size must be an int"),
    ("perplexity", "block_size", 10**9, VE, "block_size must be <= 16"),
    ("perplexity", "tokens", torch.arange(40.0), TYPE, "tokens must be an integer"),
    ("perplexity", "tokens", torch.zeros(2, 20, dtype=torch.long), VE, "tokens must have 1"),
    ("perplexity", "tokens", torch.arange(8), VE, "need more than block_size=8"),
    ("perplexity", "max_windows", 0, VE, "max_windows"),
    ("perplexity", "max_windows", NAN, TYPE, "max_windows"),
    ("perplexity", "model", "gpt", TYPE, "model"),
    ("normalize_answer", "text", 5, TYPE, "normalize_answer"),
    ("exact_match", "predictions", "fox", TYPE, "predictions must be a list"),
    ("exact_match", "answers", [1], TYPE, "answers"),
    ("exact_match", "answers", ["a", "b"], VE, "1 predictions for 2 answers"),
    ("greedy_answers_match", "examples", [], VE, "examples is empty"),
    ("greedy_answers_match", "examples", "ab", TYPE, "examples"),
    ("greedy_matches", "seqs", [([1, 2, 3], 3)], VE, "no response token"),
    ("greedy_matches", "seqs", [([1, 99, 3], 1)], VE, "out of range [0, 32)"),
    ("greedy_matches", "batch_size", 0, VE, "batch_size"),
    ("choice_logprobs", "context_ids", [], VE, "context"),
    ("choice_logprobs", "context_ids", [1.5], TYPE, "context_ids"),
    ("choice_logprobs", "context_ids", [32], VE, "context_ids"),
    ("choice_logprobs", "choices_ids", [[3], []], VE, "every choice"),
    ("choice_logprobs", "choices_ids", "ab", TYPE, "choices_ids"),
    ("multiple_choice_accuracy", "items", [{**ITEM, "answer": 2}], VE, "answer"),
    ("multiple_choice_accuracy", "items", [{**ITEM, "answer": -1}], VE, "answer"),
    ("multiple_choice_accuracy", "items", [{**ITEM, "answer": 1.0}], TYPE, "answer"),
    ("multiple_choice_accuracy", "items", [], VE, "items is empty"),
    ("multiple_choice_accuracy", "normalize", "yes", TYPE, "normalize"),
    ("pairwise_judge", "score_fn", lambda q, a, b: (NAN, 0.0), VE, "score_fn"),
    ("pairwise_judge", "score_fn", lambda q, a, b: (0.0, INF), VE, "score_fn"),
    ("pairwise_judge", "score_fn", "judge", TYPE, "score_fn"),
    ("pairwise_judge", "question", 5, TYPE, "question"),
    ("win_rate", "preferences", [], VE, "preferences is empty"),
    ("win_rate", "preferences", [0, 2], VE, "preference"),
    ("win_rate", "preferences", [True, 0], VE, "preference"),
    ("win_rate", "preferences", "0101", TYPE, "preferences"),
    ("ngrams", "n", 0, VE, "n must"),
    ("ngrams", "n", 2.5, VE, "n must"),
    ("ngrams", "words", "abc", TYPE, "words"),
    ("ngram_contamination", "train_texts", "one two three", TYPE, "train_texts"),
    ("ngram_contamination", "test_texts", "two three four", TYPE, "test_texts"),
    ("ngram_contamination", "test_texts", [], VE, "test_texts is empty"),
    ("ngram_contamination", "n", 0, VE, "n must"),
    ("wilson_interval", "n", 0, VE, "wilson_interval: n"),
    ("wilson_interval", "successes", -1, VE, "successes"),
    ("wilson_interval", "successes", 11, VE, "successes"),
    ("wilson_interval", "successes", 2.5, TYPE, "successes"),
    ("wilson_interval", "confidence", NAN, VE, "confidence"),
    ("wilson_interval", "confidence", 1.0, VE, "confidence"),
    ("mcnemar", "a_correct", [], VE, "a_correct is empty"),
    ("mcnemar", "a_correct", [1, 2, 0], VE, "a_correct"),
    ("mcnemar", "b_correct", [NAN, 0, 1], VE, "b_correct"),
    ("mcnemar", "b_correct", "abc", TYPE, "b_correct"),
    ("mcnemar", "b_correct", [0, 1], VE, "same items"),
    ("paired_bootstrap", "a_scores", [NAN, 0.0, 1.0], VE, "finite"),
    ("paired_bootstrap", "b_scores", [INF, 0.0, 1.0], VE, "finite"),
    ("paired_bootstrap", "n", 0, VE, "paired_bootstrap: n"),
    ("paired_bootstrap", "n", 10**12, VE, "paired_bootstrap: n"),
    ("paired_bootstrap", "seed", -1, VE, "seed"),
    ("paired_bootstrap", "confidence", 0, VE, "confidence"),
    ("magnitude_prune", "sparsity", NAN, VE, "sparsity"),
    ("magnitude_prune", "sparsity", 1.0, VE, "sparsity"),
    ("magnitude_prune", "sparsity", -0.1, VE, "sparsity"),
    ("magnitude_prune", "sparsity", "0.5", VE, "sparsity"),
    ("magnitude_prune", "weight", with_nan(w(4, 8)), VE, "weight contains NaN"),
    ("magnitude_prune", "weight", w(8), VE, "weight must have 2 dims"),
    ("magnitude_prune", "weight", torch.ones(4, 8, dtype=torch.long), TYPE, "weight must be a f"),
    ("magnitude_prune", "weight", torch.ones(0, 8), VE, "weight is empty"),
    ("magnitude_prune", "weight", [[1.0, 2.0]], TYPE, "weight must be a torch.Tensor"),
    ("magnitude_prune", "n_m", (3, 2), VE, "n_m"),
    ("magnitude_prune", "n_m", "2:4", VE, "n_m"),
    ("wanda_prune", "inputs", w(16, 7), VE, "inputs must be (n_samples, d_in=8)"),
    ("wanda_prune", "inputs", with_nan(w(16, 8)), VE, "inputs contains NaN"),
    ("wanda_prune", "sparsity", INF, VE, "sparsity"),
    ("sparsegpt_prune", "damp", NAN, VE, "damp"),
    ("sparsegpt_prune", "damp", -1, VE, "damp"),
    ("sparsegpt_prune", "block_size", 0, VE, "block_size"),
    ("sparsegpt_prune", "block_size", 2.5, TYPE, "block_size"),
    ("sparsegpt_prune", "inputs", w(16, 8, dtype=torch.float32)[:, :0], VE, "inputs"),
    ("n_m_mask", "n", 0, VE, "n must be >= 1"),
    ("n_m_mask", "n", 2.5, TYPE, "n must be an int"),
    ("n_m_mask", "m", 3, VE, "not divisible by m=3"),
    ("n_m_mask", "m", 1, VE, "m must be >= 2"),
    ("n_m_mask", "scores", with_nan(w(4, 8)), VE, "scores contains NaN"),
    ("n_m_mask", "scores", w(8), VE, "scores must have 2 dims"),
    ("sparsity_of", "weight", [0.0, 1.0], TYPE, "weight must be a torch.Tensor"),
    ("sparsity_of", "weight", torch.ones(0), VE, "weight is empty"),
    ("rtn_quantize", "bits", 9, VE, "bits"),
    ("rtn_quantize", "bits", 2.5, VE, "bits"),
    ("rtn_quantize", "weight", with_nan(w(4, 8)), VE, "weight contains NaN"),
    ("rtn_quantize", "group_size", 3, VE, "group_size=3 must divide"),
    ("rtn_quantize", "group_size", 0, VE, "group_size must be >= 1"),
    ("gptq_quantize", "damp", NAN, VE, "damp"),
    ("gptq_quantize", "damp", INF, VE, "damp"),
    ("gptq_quantize", "block_size", 0, VE, "block_size"),
    ("gptq_quantize", "act_order", "yes", TYPE, "act_order"),
    ("gptq_quantize", "inputs", w(16, 4), VE, "inputs must be (n_samples, d_in=8)"),
    ("gptq_quantize", "bits", True, VE, "bits"),
    ("hessian", "inputs", with_nan(w(16, 8)), VE, "inputs contains NaN"),
    ("hessian", "inputs", w(8), VE, "inputs must have 2 dims"),
    ("hessian", "inputs", torch.ones(4, 8, dtype=torch.long), TYPE, "inputs must be a floating"),
    ("hessian", "inputs", [[1.0]], TYPE, "inputs must be a torch.Tensor"),
    ("hessian", "inputs", torch.ones(0, 8), VE, "inputs is empty"),
    ("inverse_hessian_factor", "damp", NAN, VE, "damp"),
    ("inverse_hessian_factor", "damp", -0.5, VE, "damp"),
    ("inverse_hessian_factor", "damp", "0.01", TYPE, "damp"),
    ("inverse_hessian_factor", "h", w(8, 4), VE, "h must be square"),
    ("inverse_hessian_factor", "h", with_nan(torch.eye(4)), VE, "h contains NaN"),
    ("layer_error", "new_weight", w(4, 4), VE, "new_weight shape"),
    ("layer_error", "new_weight", with_nan(w(4, 8)), VE, "new_weight contains NaN"),
    ("layer_error", "inputs", w(16, 3), VE, "inputs"),
    ("distillation_loss", "student_logits", with_nan(LOGITS), VE, "student_logits contains NaN"),
    ("distillation_loss", "teacher_logits", with_nan(LOGITS), VE, "teacher_logits contains NaN"),
    ("distillation_loss", "teacher_logits", LOGITS * INF, VE, "teacher_logits contains NaN or"),
    ("distillation_loss", "student_logits", TARGETS, VE, "student_logits"),
    ("distillation_loss", "teacher_logits", LOGITS[0], VE, "teacher_logits shape"),
    ("distillation_loss", "temperature", 0, VE, "temperature"),
    ("distillation_loss", "temperature", NAN, VE, "temperature"),
    ("distillation_loss", "alpha", 1.5, VE, "alpha"),
    ("distillation_loss", "alpha", NAN, VE, "alpha"),
    ("distillation_loss", "labels", TARGETS.float(), VE, "labels"),
    ("distillation_loss", "labels", TARGETS + 10, VE, "labels must be ids in"),
    ("train_student", "student", "gpt", TYPE, "student"),
    ("train_student", "train_tokens", torch.arange(64.0), TYPE, "train_tokens"),
    ("train_student", "train_tokens", torch.arange(10), VE, "train_tokens needs more"),
    ("train_student", "steps", 0, VE, "steps"),
    ("train_student", "steps", 2.5, TYPE, "steps"),
    ("train_student", "batch_size", 0, VE, "batch_size"),
    ("train_student", "lr", NAN, VE, "lr"),
    ("train_student", "lr", 0.0, VE, "lr"),
    ("train_student", "temperature", 0, VE, "temperature"),
    ("train_student", "alpha", NAN, VE, "alpha"),
    ("train_student", "alpha", 0.5, VE, "teacher"),
    ("load_organism", "name", "gpt-4", VE, "unknown model"),
    ("load_organism", "name", 5, TYPE, "name"),
    ("SpeculativeStats", "drafted", -1, VE, "drafted"),
    ("SpeculativeStats", "accepted", 2.5, TYPE, "accepted"),
    ("SpeculativeStats", "accepted", 5, VE, "accepted=5 exceeds"),
    ("expected_tokens_per_step", "alpha", NAN, VE, "alpha"),
    ("expected_tokens_per_step", "alpha", 1.5, VE, "alpha"),
    ("expected_tokens_per_step", "k", 0, VE, "k (draft length)"),
    ("expected_tokens_per_step", "k", 2.5, VE, "k (draft length)"),
    ("expected_speedup", "cost_ratio", INF, VE, "cost_ratio"),
    ("expected_speedup", "cost_ratio", NAN, VE, "cost_ratio"),
    ("expected_speedup", "cost_ratio", -1, VE, "cost_ratio"),
    ("expected_speedup", "alpha", -0.1, VE, "alpha"),
    ("acceptance_rate", "p", with_nan(PROBS), VE, "p contains NaN"),
    ("acceptance_rate", "q", torch.tensor([1.5, -0.25, -0.25]), VE, "q has negative"),
    ("acceptance_rate", "q", torch.tensor([0.5, 0.5, 0.5]), VE, "q must sum to 1"),
    ("acceptance_rate", "q", torch.tensor([0.5, 0.5]), VE, "p has shape (3,), q (2,)"),
    ("acceptance_rate", "p", [0.5, 0.5], TYPE, "p must be a torch.Tensor"),
    ("acceptance_rate", "p", torch.tensor([1, 0]), TYPE, "p must be a floating"),
    ("verify_draft", "target_logits", torch.zeros(2, 3), VE, "(k + 1, V)"),
    ("verify_draft", "target_logits", torch.full((3, 3), NAN), VE, "target_logits"),
    ("verify_draft", "draft_probs", torch.zeros(2, 3), VE, "summing to 1"),
    ("verify_draft", "draft_probs", PROBS.repeat(3, 1), VE, "(k, V)"),
    ("verify_draft", "proposal", [0, 7], VE, "outside [0, 3)"),
    ("verify_draft", "proposal", [], TYPE, "non-empty list"),
    ("verify_draft", "proposal", [0.5, 1], TYPE, "token ids"),
    ("verify_draft", "temperature", NAN, VE, "temperature"),
    ("speculative_generate", "k", 0, VE, "k (draft length)"),
    ("speculative_generate", "max_new_tokens", 0, VE, "max_new_tokens"),
    ("speculative_generate", "temperature", NAN, VE, "temperature"),
    ("speculative_generate", "temperature", -1.0, VE, "temperature"),
    ("speculative_generate", "prompt", torch.tensor([[1.0, 2.0]]), TYPE, "prompt"),
    ("speculative_generate", "prompt", torch.tensor([[1, 99]]), VE, "prompt has ids outside"),
    ("speculative_generate", "prompt", torch.ones(1, 12, dtype=torch.long), VE, "exceeds"),
    ("speculative_generate", "prompt", torch.tensor([1, 2]), VE, "prompt must be a (1, T)"),
    ("speculative_generate", "target", "gpt", TYPE, "target"),
    ("speculative_generate", "generator", 0, TYPE, "generator"),
    ("Chunk", "text", 5, TYPE, "text"),
    ("Chunk", "start", -1, VE, "start"),
    ("Chunk", "end", 9, VE, "len(text)"),
    ("Chunk", "index", 1.5, TYPE, "index"),
    ("chunk_text", "size", 0, VE, "size"),
    ("chunk_text", "size", 2.5, TYPE, "size"),
    ("chunk_text", "overlap", -1, VE, "overlap"),
    ("chunk_text", "overlap", 4, VE, "overlap"),
    ("chunk_text", "by", "word", VE, "by must be"),
    ("chunk_text", "text", None, TYPE, "text"),
    ("chunk_text", "doc", -1, VE, "doc"),
    ("contextual_chunks", "size", 0, VE, "size"),
    ("contextual_chunks", "text", ["a"], TYPE, "text"),
    ("word_spans", "text", 5, TYPE, "text"),
    ("sentence_spans", "text", None, TYPE, "text"),
    ("embed", "texts", "abc", TYPE, "texts"),
    ("embed", "texts", [1], TYPE, "text"),
    ("embed", "batch_size", 0, VE, "batch_size"),
    ("embed_with_tokens", "texts", "abc", TYPE, "texts"),
    ("embed_with_tokens", "batch_size", 2.5, VE, "batch_size"),
    ("token_vectors", "texts", "abc", TYPE, "texts"),
    ("rerank", "depth", 0, VE, "depth must be a positive int"),
    ("rerank", "depth", 2.5, VE, "depth must be a positive int"),
    ("rerank", "ranked", [0, 5], VE, "outside [0, 2)"),
    ("rerank", "ranked", [-1], VE, "outside [0, 2)"),
    ("rerank", "ranked", [0.5], TYPE, "int item indices"),
    ("rerank", "ranked", "01", TYPE, "list of item indices"),
    ("rerank", "doc_vecs", UNIT, TYPE, "list of (n_tokens, dim) arrays"),
    ("rerank", "query_vecs", np.full((2, 4), np.nan, dtype=np.float32), VE, "NaN"),
    ("token_strings", "text", 5, TYPE, "text must be a str"),
    ("token_strings", "text", None, TYPE, "text must be a str"),
    ("maxsim", "query_vecs", UNIT[:, :2], VE, "(n_q, dim)"),
    ("maxsim", "doc_vecs", UNIT[0], VE, "(n_d, dim)"),
    ("maxsim", "doc_vecs", np.full((2, 4), np.nan), VE, "NaN"),
    ("maxsim", "query_vecs", [["a"]], TYPE, "numbers"),
    ("DenseIndex", "embeddings", 2 * UNIT, VE, "embeddings must be unit length"),
    ("DenseIndex", "embeddings", np.full((2, 3), np.nan), VE, "NaN"),
    ("DenseIndex", "embeddings", UNIT[0], VE, "embeddings must be (n >= 1, dim)"),
    ("DenseIndex", "embeddings", [["x"]], TYPE, "embeddings"),
    ("DenseIndex", "encoder", 5, TYPE, "encoder"),
    ("DenseIndex.scores", "query", 3 * UNIT[0], VE, "query must be unit length"),
    ("DenseIndex.scores", "query", np.full(4, np.nan), VE, "query contains NaN"),
    ("DenseIndex.scores", "query", UNIT[0, :3], VE, "query vector has shape"),
    ("DenseIndex.scores", "query", 5, TYPE, "query"),
    ("DenseIndex.search", "k", 0, VE, "k must"),
    ("DenseIndex.search", "k", 2.5, VE, "k must"),
    ("DenseIndex.search", "query", 2 * UNIT[1], VE, "query must be unit length"),
    ("DenseIndex.rank", "k", -1, VE, "k must"),
    ("tokenize", "text", 5, TYPE, "text"),
    ("BM25", "docs", [], VE, "docs"),
    ("BM25", "docs", "a cat", VE, "docs"),
    ("BM25", "docs", [[1, 2]], TYPE, "docs must hold str"),
    ("BM25", "docs", ["a cat"], TYPE, "each doc"),
    ("BM25", "k1", NAN, VE, "k1"),
    ("BM25", "k1", -1, VE, "k1"),
    ("BM25", "b", 2, VE, "b"),
    ("BM25", "epsilon", INF, VE, "epsilon"),
    ("BM25.scores", "query", [1, 2], TYPE, "query tokens must be str"),
    ("BM25.scores", "query", "cat", TYPE, "query"),
    ("BM25.rank", "k", 0, VE, "k must"),
    ("BM25.rank", "query", [None], TYPE, "query"),
    ("reciprocal_rank_fusion", "rankings", [], VE, "rankings"),
    ("reciprocal_rank_fusion", "rankings", ["ab"], TYPE, "each ranking"),
    ("reciprocal_rank_fusion", "rankings", [[1, 1]], VE, "twice"),
    ("reciprocal_rank_fusion", "k", NAN, VE, "k must"),
    ("reciprocal_rank_fusion", "k", -1, VE, "k must"),
    ("recall_at_k", "k", 0, VE, "k must"),
    ("recall_at_k", "relevant", "d1", TYPE, "relevant"),
    ("recall_at_k", "relevant", set(), VE, "relevant is empty"),
    ("recall_at_k", "ranked", "d1d2", TYPE, "ranked"),
    ("mrr", "k", 0, VE, "k must"),
    ("mrr", "relevant", [], VE, "relevant is empty"),
    ("mrr", "ranked", None, TYPE, "ranked"),
    ("ndcg_at_k", "k", 2.5, VE, "k must"),
    ("ndcg_at_k", "relevant", 2, TYPE, "relevant"),
    ("Retriever", "texts", [], VE, "texts"),
    ("Retriever", "texts", "a cat", VE, "texts"),
    ("Retriever", "texts", [1, 2], TYPE, "texts"),
    ("Retriever", "rrf_k", NAN, VE, "rrf_k"),
    ("Retriever", "embeddings", 2 * UNIT[:2], VE, "embeddings must be unit length"),
    ("Retriever", "embeddings", UNIT, VE, "3 embeddings for 2 texts"),
    ("Retriever.rank", "method", "grep", VE, "method"),
    ("Retriever.rank", "method", "dense", VE, "only 'bm25'"),
    ("Retriever.rank", "k", 0, VE, "k must"),
    ("Retriever.rank", "query", ["cat"], TYPE, "query"),
    ("word_overlap", "question", 5, TYPE, "question"),
    ("word_overlap", "sentence", None, TYPE, "sentence"),
    ("read_answer", "passages", "Tom is a cat.", TYPE, "passages must be a list"),
    ("read_answer", "passages", [None], TYPE, "passage"),
    ("read_answer", "threshold", NAN, VE, "threshold"),
    ("read_answer", "score", lambda q, s: NAN, VE, "score returned nan"),
    ("read_answer", "score", "overlap", TYPE, "score must be callable"),
    ("read_answer", "question", 5, TYPE, "question"),
    ("looks_injected", "text", 5, TYPE, "text"),
]


@pytest.mark.parametrize("fn_name, arg, bad, error, fragment", BAD,
                         ids=[f"{r[0]}-{r[1]}-{i}" for i, r in enumerate(BAD)])
def test_bad_input_is_refused_naming_function_and_argument(fn_name, arg, bad, error, fragment):
    fn, valid = VALID[fn_name]
    kwargs = valid()
    assert arg in kwargs or arg in inspect.signature(fn).parameters, f"{fn_name} has no {arg}"
    kwargs[arg] = bad.make() if isinstance(bad, Lazy) else bad
    with pytest.raises(error) as info:
        fn(**kwargs)
    message = str(info.value)
    assert fragment in message, message
    owner = fn_name.split(".")[0]
    assert re.search(rf"\b{re.escape(owner)}", message) or fn_name in message, \
        f"the message does not name {fn_name}: {message}"
    assert arg in message or fragment in message


@pytest.mark.parametrize("fn_name", sorted(VALID))
def test_the_valid_calls_are_valid(fn_name):
    """Each row changes one argument of a call that works: the error is that argument's."""
    fn, valid = VALID[fn_name]
    try:
        fn(**valid())
    except ValueError as e:  # the shipped weights may be missing in a bare checkout
        assert fn_name == "load_organism" and "missing" in str(e), e


def _public_methods(cls) -> list[str]:
    """Methods a caller passes arguments to (no properties, no dunders, not argument-free)."""
    out = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        if len(inspect.signature(member).parameters) > 1:           # more than self
            out.append(f"{cls.__name__}.{name}")
    return out


def test_every_public_name_is_in_the_table():
    covered = {row[0] for row in BAD}
    missing = []
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj):
                continue                                   # constants: USER, STOPWORDS, ...
            if name not in covered:
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj):
                missing += [f"{module.__name__}.{m}" for m in _public_methods(obj)
                            if m not in covered]
    assert not missing, f"public functions with no bad-input row: {missing}"


# -------------------------------------------------------------------- the findings, on valid input
STRUCTURED = ("# Cats\n\nTom is a grey cat. He sleeps all day on the warm windowsill.\n\n"
              "## Dogs\n\nRex barks at the postman.\nHe never bites.\n\n\n### Birds\n\n"
              "A robin sings.")


@pytest.mark.parametrize("size", [5, 10, 20, 40, 80, 200])
def test_recursive_chunks_are_never_blank(size):
    chunks = chunking.chunk_text(STRUCTURED, size, by="recursive")
    assert chunks and all(c.text.strip() for c in chunks)
    assert all(len(c.text) <= size for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(STRUCTURED[c.start:c.end] == c.text for c in chunks)
    # every non-space character of the text is in some chunk: nothing but blanks was dropped
    covered = set().union(*(range(c.start, c.end) for c in chunks))
    assert all(i in covered for i, ch in enumerate(STRUCTURED) if not ch.isspace())


def test_dense_index_scores_are_cosines_of_unit_vectors():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(5, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    index = dense.DenseIndex(embeddings=e)
    q = e[2] + 0.5 * e[0]
    q /= np.linalg.norm(q)
    want = e @ q / (np.linalg.norm(e, axis=1) * np.linalg.norm(q))
    np.testing.assert_allclose(index.scores(q), want, atol=1e-6)
    assert index.rank(q)[0] == 2
    with pytest.raises(ValueError, match="unit length"):
        index.scores(10 * q)   # its dot products would be 10x the cosines


def test_magnitude_prune_exercise_rounds_as_the_library():
    """One convention, round(sparsity * d_in) (Python's round): 0.35 * 8 = 2.8 prunes 3."""
    from course_lib.exercises import solution

    x = w(3, 8, seed=5)
    got = solution("ch6.magnitude_prune")(x, 0.35)
    assert torch.equal(got, prune.magnitude_prune(x, 0.35))
    assert (got == 0).sum(dim=1).tolist() == [3, 3, 3]


def test_pad_batch_and_sft_loss_on_valid_input():
    x, y = align.pad_batch([([5, 6, 7, 8], 2), ([5, 6, 7], 1)])
    assert x.tolist() == [[5, 6, 7], [5, 6, 0]]
    assert y.tolist() == [[-100, 7, 8], [6, 7, -100]]
    loss = align.sft_loss(LOGITS, TARGETS)
    assert math.isfinite(loss.item())


def test_bm25_and_read_answer_on_valid_input():
    bm = sparse.BM25([["a", "dog"], ["a", "cat"], ["a", "bird"]])
    assert bm.rank(["cat"])[0] == 1 and bm.scores(("cat",))[1] > 0
    assert pipeline.read_answer("What is Tom?", ["Rex barks.", "Tom is a cat."]) == \
        ("Tom is a cat.", 1)


def test_ngram_contamination_and_choice_accuracy_on_valid_input():
    assert evaluate.ngram_contamination(["one two three"], ["two three", "four five"], 2) == 0.5
    acc = evaluate.multiple_choice_accuracy(gpt(), [ITEM, {**ITEM, "answer": 0}], False)
    assert acc == 0.5   # the same scores, opposite answers: exactly one of the two is right


# -------------------------------------------------------------------- one evaluation loop
def _old_loop(model, tokens, block, batch_size, n_windows):
    """The loop ``evaluate.perplexity`` and ``train.evaluate`` each had before they shared
    ``train.window_loss``, kept here to hold the shared loop to the same numbers."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, n_windows, batch_size):
        idx = range(start, min(start + batch_size, n_windows))
        x = torch.stack([tokens[i * block: (i + 1) * block] for i in idx])
        y = torch.stack([tokens[i * block + 1: (i + 1) * block + 1] for i in idx])
        _, loss = model(x, y)
        total += loss.item() * y.numel()
        count += y.numel()
    return total / count


def test_perplexity_and_evaluate_share_one_loop_with_unchanged_results():
    model = gpt(3)
    tokens = torch.randint(32, (700,), generator=torch.Generator().manual_seed(1))
    n = (700 - 1) // 16
    # bit for bit: the same windows, batches and sums as the loops they replace
    assert evaluate.perplexity(model, tokens) == math.exp(_old_loop(model, tokens, 16, 16, n))
    assert evaluate.perplexity(model, tokens, 8, max_windows=5) == \
        math.exp(_old_loop(model, tokens, 8, 16, 5))
    assert train.evaluate(model, tokens) == _old_loop(model, tokens, 16, 32, n)
    assert train.evaluate(model, tokens, batch_size=4, max_batches=2) == \
        _old_loop(model, tokens, 16, 4, 8)
    # one loop: perplexity is exp of evaluate with perplexity's 16 windows per batch
    assert evaluate.perplexity(model, tokens, 8) == \
        math.exp(train.evaluate(model, tokens, 8, batch_size=16))
    model.train()
    evaluate.perplexity(model, tokens)
    assert model.training                     # the mode is put back
