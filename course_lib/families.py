"""Training and evaluation for the two other transformer families: encoder-only ("tiny-bert",
masked-LM pretraining on the story corpus, then mood classification) and encoder-decoder
("tiny-t5", number words -> digits).

``python -m course_lib.families --preset tiny-bert|tiny-t5`` retrains the shipped
checkpoints with ``train.fit`` (one thread, fixed seeds): bit for bit only on the machine type
that made them, see ``checkpoint.compare_to_record``. Taught in book/01_transformer.md.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from . import data
from ._checks import check_int
from .models import EncoderDecoder, EncoderModel, GPTConfig, config_dict, mlm_mask
from .tokenizer import BPETokenizer
from .train import Schedule, cli, fit, get_batch, run_with_threads, save_run

BERT_SPECIALS = ["[PAD]", "[MASK]"]
T5_SPECIALS = ["<pad>", "<bos>", "<eos>"]


@dataclass
class BertPreset:
    """Masked-LM pretraining on the stories, then fine-tuning a mood classifier."""

    config: GPTConfig
    steps: int                 # masked-LM steps
    batch_size: int
    lr: float
    finetune_steps: int
    finetune_lr: float
    n_labelled: int            # labelled sentences for fine-tuning
    n_test: int                # held-out sentences
    warmup: int = 50
    weight_decay: float = 0.01
    mask_prob: float = 0.15
    vocab_size: int = 512      # BPE vocabulary, special tokens included
    n_stories: int = 4000
    seed: int = 0
    num_threads: int = 1
    notes: str = ""

    @property
    def schedule(self) -> Schedule:
        """Masked-LM pretraining: warm-up, then cosine decay."""
        return Schedule(self.lr, self.steps, self.warmup)

    @property
    def finetune_schedule(self) -> Schedule:
        """Fine-tuning: its own peak and length, a warm-up of at most a fifth of it."""
        return Schedule(self.finetune_lr, self.finetune_steps,
                        min(self.warmup, self.finetune_steps // 5 + 1))


@dataclass
class T5Preset:
    """Number words -> digits on numbers in [low, high); ``n_test`` numbers are held out."""

    config: GPTConfig
    steps: int
    batch_size: int
    lr: float
    n_test: int
    low: int = 0
    high: int = 1000
    warmup: int = 50
    weight_decay: float = 0.01
    seed: int = 0
    num_threads: int = 1
    notes: str = ""

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.lr, self.steps, self.warmup)


PRESETS: dict[str, BertPreset | T5Preset] = {
    "tiny-bert": BertPreset(
        config=GPTConfig(vocab_size=512, block_size=64, n_layer=2, n_head=4, d_model=64),
        steps=1500, batch_size=32, lr=2e-3, finetune_steps=300, finetune_lr=2e-3,
        n_labelled=200, n_test=1000,
        notes="encoder-only: 2 layers, 4 heads, d_model 64; MLM on the stories, then moods",
    ),
    "tiny-t5": T5Preset(
        config=GPTConfig(vocab_size=512, block_size=16, n_layer=2, n_head=4, d_model=64),
        steps=1500, batch_size=64, lr=2e-3, n_test=200,
        notes="encoder-decoder: 2 + 2 layers, 4 heads, d_model 64; number words -> digits",
    ),
    # seconds-long versions for the tests
    "micro-bert": BertPreset(
        config=GPTConfig(vocab_size=300, block_size=48, n_layer=1, n_head=2, d_model=32),
        steps=20, batch_size=8, lr=2e-3, finetune_steps=10, finetune_lr=1e-3,
        n_labelled=40, n_test=50, warmup=5, vocab_size=300, n_stories=200,
        notes="a toy preset for tests",
    ),
    "micro-t5": T5Preset(
        config=GPTConfig(vocab_size=512, block_size=16, n_layer=1, n_head=2, d_model=32),
        steps=20, batch_size=16, lr=2e-3, n_test=30, high=200, warmup=5,
        notes="a toy preset for tests",
    ),
}


def get_preset(name: str) -> BertPreset | T5Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]


# --------------------------------------------------------------------------------- helpers
def pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists to one length: ids (B, T) and pad_mask (B, T), True = real."""
    pad_id = check_int("pad_batch", "pad_id", pad_id)
    if not seqs:
        raise ValueError("pad_batch: no sequences")
    if any(len(s) == 0 for s in seqs):
        raise ValueError("pad_batch: empty sequence in the batch")
    for s in seqs:
        for i in s:
            check_int("pad_batch", "seqs", i)
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), t, dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = True
    return ids, mask


def accuracy(predictions, labels) -> float:
    """Fraction of positions where prediction == label."""
    predictions, labels = list(predictions), list(labels)
    if not labels:
        raise ValueError("accuracy: no labels")
    if len(predictions) != len(labels):
        raise ValueError(f"accuracy: {len(predictions)} predictions for {len(labels)} labels")
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Fraction of predicted strings identical to their reference (after stripping spaces)."""
    predictions, references = list(predictions), list(references)
    if not references:
        raise ValueError("exact_match: no references")
    if len(predictions) != len(references):
        raise ValueError(f"exact_match: {len(predictions)} predictions for "
                         f"{len(references)} references")
    return sum(p.strip() == r.strip() for p, r in zip(predictions, references)) / len(references)


def majority_baseline(train_labels, test_labels) -> float:
    """Accuracy on the test labels of always answering the training set's commonest label."""
    train_labels = list(train_labels)
    if not train_labels:
        raise ValueError("majority_baseline: no training labels")
    commonest = Counter(train_labels).most_common(1)[0][0]
    return accuracy([commonest] * len(list(test_labels)), test_labels)


BETAS = (0.9, 0.98)  # AdamW's betas for both families


# ----------------------------------------------------------------------- encoder-only (BERT)
def mood_task(preset: BertPreset):
    """(labelled, test): mood sentences; test sentences that also occur in training are dropped
    so every test sentence is unseen."""
    labelled = data.mood_sentences(preset.n_labelled, seed=preset.seed + 1)
    seen = {t for t, _ in labelled}
    test = [(t, y) for t, y in data.mood_sentences(preset.n_test, seed=preset.seed + 2)
            if t not in seen]
    return labelled, test


def pretrain_mlm(model: EncoderModel, tokens: torch.Tensor, preset: BertPreset, mask_id: int,
                 progress: bool = False) -> list[float]:
    """Masked-LM on random windows of the token stream (BERT's 15%, 80/10/10). Returns the
    loss of every step."""
    gen = torch.Generator().manual_seed(preset.seed)
    cfg = model.config

    def batches():
        x, _ = get_batch(tokens, preset.batch_size, cfg.block_size, gen)
        return mlm_mask(x, mask_id, cfg.vocab_size, preset.mask_prob, gen)  # (inputs, targets)

    return fit(model, batches, mlm_loss, schedule=preset.schedule, betas=BETAS,
               weight_decay=preset.weight_decay, progress=progress, desc="mlm").loss


def mlm_loss(model: EncoderModel, batch) -> torch.Tensor:
    """Masked-LM cross-entropy on a batch ``(inputs, targets)``: a ``loss_fn`` for ``fit``."""
    inputs, targets = batch
    return model(inputs, targets=targets)[1]


@torch.no_grad()
def evaluate_mlm(model: EncoderModel, tokens: torch.Tensor, mask_id: int, n_windows: int = 64,
                 mask_prob: float = 0.15, seed: int = 0) -> dict:
    """Masked-token loss and accuracy on windows of held-out tokens, with a fixed masking."""
    bs = model.config.block_size
    n_windows = check_int("evaluate_mlm", "n_windows", n_windows, low=1)
    if len(tokens) < bs * n_windows:
        raise ValueError(f"evaluate_mlm: need {bs * n_windows} tokens, got {len(tokens)}")
    x = tokens[: bs * n_windows].view(n_windows, bs)
    gen = torch.Generator().manual_seed(seed)
    inputs, targets = mlm_mask(x, mask_id, model.config.vocab_size, mask_prob, gen)
    logits, loss = model(inputs, targets=targets)
    chosen = targets != -100
    acc = (logits.argmax(-1)[chosen] == targets[chosen]).float().mean().item()
    return {"loss": loss.item(), "accuracy": acc, "n_predicted": int(chosen.sum())}


def finetune_classifier(model: EncoderModel, tok: BPETokenizer, examples, preset: BertPreset,
                        progress: bool = False) -> list[float]:
    """Fine-tune every weight on (text, label) pairs with cross-entropy; returns step losses."""
    pad_id = tok.special_tokens["[PAD]"]
    encoded = [tok.encode(t) for t, _ in examples]
    labels = torch.tensor([y for _, y in examples])
    gen = torch.Generator().manual_seed(preset.seed + 1)

    def batches():
        pick = torch.randint(len(examples), (preset.batch_size,), generator=gen).tolist()
        ids, mask = pad_batch([encoded[i] for i in pick], pad_id)
        return ids, mask, labels[pick]

    return fit(model, batches, classifier_loss, schedule=preset.finetune_schedule, betas=BETAS,
               weight_decay=preset.weight_decay, progress=progress, desc="finetune").loss


def classifier_loss(model: EncoderModel, batch) -> torch.Tensor:
    """Cross-entropy of the classifier on ``(ids, pad_mask, labels)``: a ``loss_fn``."""
    ids, mask, labels = batch
    return model.classify(ids, mask, labels=labels)[1]


@torch.no_grad()
def predict_classes(model: EncoderModel, texts: list[str], batch_size: int = 256) -> list[int]:
    """The classifier's label for each text (the model's ``.tokenizer`` encodes them)."""
    if isinstance(texts, str) or not texts:
        raise ValueError("predict_classes: texts must be a non-empty list of strings")
    batch_size = check_int("predict_classes", "batch_size", batch_size, low=1)
    tok = model.tokenizer
    pad_id = tok.special_tokens["[PAD]"]
    out: list[int] = []
    for start in range(0, len(texts), batch_size):
        ids, mask = pad_batch([tok.encode(t) for t in texts[start: start + batch_size]], pad_id)
        logits, _ = model.classify(ids, mask)
        out.extend(logits.argmax(-1).tolist())
    return out


def _train_bert(preset: BertPreset, progress: bool):
    train_text = data.corpus_text("train", seed=preset.seed, n_stories=preset.n_stories)
    val_text = data.corpus_text("val", seed=preset.seed, n_stories=preset.n_stories)
    tok = BPETokenizer.train(train_text, preset.vocab_size, special_tokens=BERT_SPECIALS)
    cfg = replace(preset.config, vocab_size=tok.vocab_size)
    mask_id = tok.special_tokens["[MASK]"]
    train_ids = torch.tensor(tok.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    labelled, test = mood_task(preset)
    texts, labels = [t for t, _ in test], [y for _, y in test]

    def fresh():
        torch.manual_seed(preset.seed)
        m = EncoderModel(cfg, n_classes=len(data.MOODS))
        m.tokenizer = tok
        return m

    # the same fine-tuning from random weights: what the pretraining is worth
    scratch = fresh()
    finetune_classifier(scratch, tok, labelled, preset)
    scratch_acc = accuracy(predict_classes(scratch, texts), labels)

    model = fresh()
    mlm_losses = pretrain_mlm(model, train_ids, preset, mask_id, progress)
    n_windows = min(64, len(val_ids) // cfg.block_size)
    mlm = evaluate_mlm(model, val_ids, mask_id, n_windows=n_windows, seed=preset.seed)
    counts = torch.bincount(train_ids, minlength=cfg.vocab_size)
    unigram_acc = (val_ids == counts.argmax()).float().mean().item()
    ft_losses = finetune_classifier(model, tok, labelled, preset, progress)
    metrics = {
        "test_accuracy": accuracy(predict_classes(model, texts), labels),
        "majority_baseline": majority_baseline([y for _, y in labelled], labels),
        "scratch_accuracy": scratch_acc,
        "mlm_val_loss": mlm["loss"], "mlm_val_accuracy": mlm["accuracy"],
        "mlm_unigram_accuracy": unigram_acc,
        "n_labelled": len(labelled), "n_test": len(test), "labels": list(data.MOODS),
        "train_tokens": len(train_ids),
    }
    history = {"mlm_step": list(range(0, preset.steps, 10)), "mlm_loss": mlm_losses[::10],
               "finetune_loss": ft_losses}
    return model, tok, cfg, metrics, history


# ------------------------------------------------------------------ encoder-decoder (T5-like)
def number_task(preset: T5Preset):
    """(train, test) (words, digits) pairs: ``n_test`` numbers held out, all others train."""
    test = data.number_pairs(preset.n_test, seed=preset.seed + 1, low=preset.low,
                             high=preset.high)
    held_out = {int(d) for _, d in test}
    n_train = preset.high - preset.low - len(held_out)
    train = data.number_pairs(n_train, seed=preset.seed, low=preset.low, high=preset.high,
                              exclude=held_out)
    return train, test


def _t5_tensors(tok: BPETokenizer, pairs):
    """Source ids + pad mask, decoder inputs (<bos> digits) and targets (digits <eos>)."""
    sp = tok.special_tokens
    src, src_mask = pad_batch([tok.encode(w) for w, _ in pairs], sp["<pad>"])
    tgt_seqs = [[sp["<bos>"]] + tok.encode(d) + [sp["<eos>"]] for _, d in pairs]
    tgt, tgt_mask = pad_batch(tgt_seqs, sp["<pad>"])
    targets = tgt[:, 1:].masked_fill(~tgt_mask[:, 1:], -100)
    return src, src_mask, tgt[:, :-1], targets


def train_translator(model: EncoderDecoder, tok: BPETokenizer, pairs, preset: T5Preset,
                     progress: bool = False) -> list[float]:
    """Teacher-forced cross-entropy on (words, digits) pairs; returns the step losses."""
    src, src_mask, dec_in, targets = _t5_tensors(tok, pairs)
    gen = torch.Generator().manual_seed(preset.seed)

    def batches():
        pick = torch.randint(len(pairs), (preset.batch_size,), generator=gen)
        return src[pick], dec_in[pick], src_mask[pick], targets[pick]

    schedule = Schedule(preset.lr, preset.steps, preset.warmup)
    return fit(model, batches, seq2seq_loss, schedule=schedule, betas=BETAS,
               weight_decay=preset.weight_decay, progress=progress, desc="t5").loss


def seq2seq_loss(model: EncoderDecoder, batch) -> torch.Tensor:
    """Teacher-forced cross-entropy on ``(src, decoder_inputs, src_pad_mask, targets)``."""
    src, dec_in, src_mask, targets = batch
    return model(src, dec_in, src_mask, targets=targets)[1]


@torch.no_grad()
def translate(model: EncoderDecoder, sources: list[str], max_new_tokens: int = 8) -> list[str]:
    """Greedy translation of each source string; the text between <bos> and <eos>."""
    if isinstance(sources, str) or not sources:
        raise ValueError("translate: sources must be a non-empty list of strings")
    max_new_tokens = check_int("translate", "max_new_tokens", max_new_tokens, low=1)
    tok = model.tokenizer
    sp = tok.special_tokens
    src, src_mask = pad_batch([tok.encode(s) for s in sources], sp["<pad>"])
    out = model.generate(src, sp["<bos>"], sp["<eos>"], max_new_tokens, src_pad_mask=src_mask)
    results = []
    for row in out[:, 1:].tolist():
        row = row[: row.index(sp["<eos>"])] if sp["<eos>"] in row else row
        results.append(tok.decode([i for i in row if i not in sp.values()]))
    return results


def _train_t5(preset: T5Preset, progress: bool):
    train, test = number_task(preset)
    words_text = "\n".join(w for w, _ in train)
    # merges from the words only, so digits stay single-byte tokens; far more room than needed:
    # training stops when every word is one token
    tok = BPETokenizer.train(words_text, 1024, special_tokens=T5_SPECIALS)
    cfg = replace(preset.config, vocab_size=tok.vocab_size)
    torch.manual_seed(preset.seed)
    model = EncoderDecoder(cfg)
    model.tokenizer = tok
    losses = train_translator(model, tok, train, preset, progress)
    preds = translate(model, [w for w, _ in test])
    train_preds = translate(model, [w for w, _ in train])
    wrong = [(w, p, d) for (w, d), p in zip(test, preds) if p != d]
    metrics = {
        "exact_match": exact_match(preds, [d for _, d in test]),
        "train_exact_match": exact_match(train_preds, [d for _, d in train]),
        "n_train": len(train), "n_test": len(test), "range": [preset.low, preset.high],
        "test_numbers": sorted(int(d) for _, d in test), "errors": wrong,
    }
    history = {"step": list(range(0, preset.steps, 10)), "train_loss": losses[::10]}
    return model, tok, cfg, metrics, history


# ------------------------------------------------------------------------------ entry point
def run_preset(name: str, out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train a preset from scratch and write ``NAME.safetensors``, ``NAME.json`` (family,
    config, sha256, metrics, history) and ``NAME.tokenizer.json`` into ``out_dir`` (default
    ``./weights``)."""
    preset = get_preset(name)
    bert = isinstance(preset, BertPreset)
    (model, tok, cfg, metrics, history), seconds = run_with_threads(
        preset.num_threads, lambda: (_train_bert if bert else _train_t5)(preset, progress))
    family = "encoder" if bert else "encoder-decoder"
    record = {
        "name": name, "family": family, "config": config_dict(cfg),
        **({"n_classes": len(data.MOODS)} if bert else {}),
        **metrics,
        "steps": preset.steps, "batch_size": preset.batch_size, "lr": preset.lr,
        "seed": preset.seed, "num_threads": preset.num_threads,
        "train_seconds": round(seconds, 1), "notes": preset.notes, "history": history,
    }
    return save_run(out_dir, name, model, tok, record,
                    f"python -m course_lib.families --preset {name}", indent=1)


def _summary(name: str, meta: dict) -> str:
    keys = ("test_accuracy", "majority_baseline", "scratch_accuracy", "mlm_val_accuracy",
            "exact_match", "train_exact_match")
    shown = ", ".join(f"{k} {meta[k]:.4f}" for k in keys if k in meta)
    return f"{name}: {meta['n_params']:,} parameters, {shown}, {meta['train_seconds']} s"


def main(argv: list[str] | None = None) -> int:
    return cli(argv, "python -m course_lib.families",
               "Train the encoder-only or encoder-decoder course model from a preset.",
               PRESETS, run_preset, _summary)


if __name__ == "__main__":
    sys.exit(main())
