"""Feature absorption on the first-letter task (after Chanin et al. and SAEBench; our implementation).

1. Words: vocabulary tokens `` <alphabetic word>``, labelled by first letter (``tasks.first_letter_words``);
   activations at the SAE's hook on the word's token inside an in-context spelling prompt.
2. Ground truth: per letter, a logistic probe on the raw activations (train split). A test word is a
   *probe true positive* of its letter when that probe scores it > 0. Letters whose probe F1 on the test
   split is below ``min_probe_f1`` are not evaluated: the model does not represent them linearly there.
3. Main latents: per letter, an L1-penalised logistic probe on the latents ranks them (positive weights);
   k-sparse probes on the top-k latents (k = 1..max_k) are scored by test F1, and k grows while F1 rises
   by at least ``f1_jump`` — those k latents are the letter's main latents (more than one = feature
   splitting).
4. Per probe-true-positive test word, with ``p`` the unit probe direction and each latent's contribution to
   the probe projection ``c_i = f_i * (W_dec[i] . p) / scale``:
   - absorption fraction: 0 if the main latents already account for the projection ``x . p`` or the top
     ``max_absorbers`` other latents with ``cos(W_dec[i], p) >= absorber_cos`` and ``c_i > 0`` carry less
     than ``proportion`` of it; 1 if the main latents contribute nothing; otherwise the absorbers' share
     of the explained projection;
   - full absorption: no main latent fires, the top-contributing latent has ``cos >= full_cos`` with ``p``
     and carries at least ``proportion`` of ``x . p``.
   Rates are per letter (over its probe true positives) and averaged over the evaluated letters.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import BadRequest
from ..model.loader import LoadedModel
from ..sae.model import SparseAutoencoder
from .probes import (LiveLatents, collect_positions, encode_live, f1_score, fit_binary_probe, l1_probe_weights,
                     stratified_split)
from .tasks import LETTERS, first_letter_prompts, first_letter_words

EPS = 1e-8


@dataclass
class AbsorptionConfig:
    max_per_letter: int | None = 64
    """Words sampled per letter (None: every one in the vocabulary)."""
    n_examples: int = 4
    """Answered in-context examples before each word."""
    test_fraction: float = 0.3
    max_k: int = 10
    """Largest k-sparse probe tried when looking for main latents."""
    f1_jump: float = 0.03
    """F1 gain that makes one more latent a main latent (feature splitting)."""
    l1_decay: float = 0.01
    """L1 penalty per sample of the latent-ranking probe."""
    min_probe_f1: float = 0.6
    """Letters whose ground-truth probe is worse than this are not evaluated."""
    min_words: int = 4
    """Letters with fewer words (train + test) are not evaluated."""
    absorber_cos: float = 0.1
    """Cosine with the probe a latent needs to count as a (partial) absorber."""
    full_cos: float = 0.025
    """Cosine with the probe the top latent needs for full absorption."""
    proportion: float = 0.4
    """Share of the probe projection the absorber(s) must carry."""
    max_absorbers: int = 3
    batch_size: int = 16
    """Prompts per model forward."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise BadRequest("test_fraction must be in (0, 1)")
        if self.max_k < 1 or self.max_absorbers < 1 or self.n_examples < 0 or self.batch_size < 1:
            raise BadRequest("max_k, max_absorbers and batch_size must be >= 1, n_examples >= 0")
        if self.max_per_letter is not None and self.max_per_letter < 2:
            raise BadRequest("max_per_letter must be at least 2 (or None)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LetterAbsorption:
    letter: str
    n_train: int
    """Training words of this letter."""
    n_test: int
    """Test words of this letter."""
    probe_f1: float
    """Ground-truth probe F1 on the test split (this letter vs the rest)."""
    n_probe_true_positives: int
    main_latents: list[int]
    """The letter's main latents (first = best)."""
    main_f1: float
    """Test F1 of the k-sparse probe on the main latents."""
    mean_absorption_fraction: float
    full_absorption_rate: float
    absorbed_words: list[str]
    """Probe-true-positive test words with full absorption."""
    absorbing_latents: list[int]
    """The top-contributing latent of each absorbed word (same order)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AbsorptionResult:
    config: AbsorptionConfig
    n_words: int
    """Words with an activation (prompts built)."""
    letters: list[LetterAbsorption]
    """Evaluated letters."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Letter -> why it was not evaluated."""

    def mean_absorption_fraction(self) -> float | None:
        return float(np.mean([r.mean_absorption_fraction for r in self.letters])) if self.letters else None

    def mean_full_absorption(self) -> float | None:
        return float(np.mean([r.full_absorption_rate for r in self.letters])) if self.letters else None

    def mean_split_latents(self) -> float | None:
        return float(np.mean([len(r.main_latents) for r in self.letters])) if self.letters else None

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "n_words": self.n_words,
                "letters": [r.to_dict() for r in self.letters], "skipped": self.skipped,
                "mean_absorption_fraction": self.mean_absorption_fraction(),
                "mean_full_absorption": self.mean_full_absorption(),
                "mean_main_latents": self.mean_split_latents()}


def _main_latents(z: LiveLatents, y: np.ndarray, tr: np.ndarray, te: np.ndarray, cfg: AbsorptionConfig
                  ) -> tuple[list[int], float]:
    """Columns of ``z`` that are the letter's main latents, and their k-sparse test F1."""
    train_live = (z.z[tr] > 0).any(0)
    cols = np.flatnonzero(train_live)
    if len(cols) == 0:
        return [], 0.0
    w = l1_probe_weights(z.z[tr][:, cols], y[tr], l1_decay=cfg.l1_decay)
    ranked = cols[np.argsort(-w, kind="stable")]
    ranked = ranked[: max(1, min(cfg.max_k, int((w > 0).sum())))]
    best, chosen = -1.0, []
    for k in range(1, len(ranked) + 1):
        sel = ranked[:k]
        probe = fit_binary_probe(z.z[tr][:, sel], y[tr])
        f1 = f1_score(y[te], (probe.scores(z.z[te][:, sel]) > 0).astype(np.int64))
        if f1 > best + cfg.f1_jump:
            best, chosen = f1, sel.tolist()
        else:
            break
    return chosen, max(best, 0.0)


def absorption_from_activations(x: Tensor, letters: np.ndarray, words: list[str], sae: SparseAutoencoder,
                                cfg: AbsorptionConfig | None = None) -> AbsorptionResult:
    """Absorption from word activations ``x [n d_in]`` at the SAE's hook, ``letters [n]`` (0..25)."""
    cfg = cfg or AbsorptionConfig()
    if x.shape[0] != len(letters) or len(words) != len(letters):
        raise BadRequest("x, letters and words must have one row per word")
    split = stratified_split(letters, cfg.test_fraction, cfg.seed)
    tr, te = split.train, split.test
    xn = x.double().numpy()
    z = encode_live(sae, x)
    W_dec = sae.W_dec.detach().double().cpu()
    dec_norm = W_dec.norm(dim=1).clamp_min(1e-12)
    out, skipped = [], {}
    for li in np.unique(letters):
        letter = LETTERS[li]
        y = (letters == li).astype(np.int64)
        if y.sum() < cfg.min_words or y[te].sum() == 0 or y[tr].sum() == 0:
            skipped[letter] = f"{int(y.sum())} words; need at least {cfg.min_words} with some in each split"
            continue
        probe = fit_binary_probe(xn[tr], y[tr])
        score_te = probe.scores(xn[te])
        probe_f1 = f1_score(y[te], (score_te > 0).astype(np.int64))
        if probe_f1 < cfg.min_probe_f1:
            skipped[letter] = f"ground-truth probe F1 {probe_f1:.2f} < {cfg.min_probe_f1}"
            continue
        cols, main_f1 = _main_latents(z, y, tr, te, cfg)
        if not cols:
            skipped[letter] = "no latent fires on its training words, so it has no main latent"
            continue
        main = z.latents[cols].tolist()
        p = probe.direction().double()
        proj_dec = (W_dec @ p) / sae.scale  # [d_sae] probe projection per unit activation
        cos = (W_dec @ p) / dec_norm  # [d_sae]
        tp_rows = te[(y[te] == 1) & (score_te > 0)]
        fractions, absorbed, absorbers = [], [], []
        for r in tp_rows.tolist():
            frac, full, top = _word_absorption(float(x[r].double() @ p), z, r, main, proj_dec, cos, cfg)
            fractions.append(frac)
            if full:
                absorbed.append(words[r])
                absorbers.append(top)
        n_tp = len(tp_rows)
        out.append(LetterAbsorption(
            letter, int(y[tr].sum()), int(y[te].sum()), probe_f1, n_tp, main, main_f1,
            float(np.sum(fractions) / n_tp) if n_tp else 0.0, len(absorbed) / n_tp if n_tp else 0.0,
            absorbed, absorbers))
    return AbsorptionResult(cfg, len(words), out, skipped)


def _word_absorption(total: float, z: LiveLatents, row: int, main: list[int], proj_dec: Tensor, cos: Tensor,
                     cfg: AbsorptionConfig) -> tuple[float, bool, int]:
    """(absorption fraction, full absorption?, top-contributing latent) of one word (see module doc)."""
    act_cols = np.flatnonzero(z.z[row] > 0)
    lat = torch.from_numpy(z.latents[act_cols])
    acts = torch.from_numpy(z.z[row, act_cols])
    contrib = acts * proj_dec[lat]  # [n_active]
    is_main = torch.tensor([int(i) in set(main) for i in lat.tolist()], dtype=torch.bool)
    main_proj = float(contrib[is_main].sum())
    cand = (~is_main) & (cos[lat] >= cfg.absorber_cos) & (contrib > 0)
    absorb = float(contrib[cand].topk(min(cfg.max_absorbers, int(cand.sum()))).values.sum()) if cand.any() else 0.0
    if total <= 0 or main_proj >= total or absorb / total < cfg.proportion:
        frac = 0.0
    elif main_proj <= 0:
        frac = 1.0
    else:
        a = min(absorb, total - main_proj)
        frac = float(np.clip(a / (a + main_proj), 0.0, 1.0))
    if len(lat) == 0:
        return frac, False, -1
    top = int(contrib.argmax())
    main_fired = bool(is_main.any()) and float(acts[is_main].max()) > EPS
    full = (not main_fired and total > 0 and float(cos[lat[top]]) >= cfg.full_cos
            and float(contrib[top]) / total >= cfg.proportion)
    return frac, full, int(lat[top])


def absorption(lm: LoadedModel, sae: SparseAutoencoder, cfg: AbsorptionConfig | None = None, *,
               lock: threading.RLock | None = None, progress: Callable[[str], None] | None = None) -> AbsorptionResult:
    """Build the first-letter task from ``lm``'s tokenizer, run the prompts (forwards hold ``lock`` and stop at
    the SAE's layer), and measure absorption."""
    cfg = cfg or AbsorptionConfig()
    words = first_letter_words(lm.tokenizer, max_per_letter=cfg.max_per_letter, seed=cfg.seed)
    if len(words.words) < 2 * cfg.min_words:
        raise BadRequest(f"the tokenizer has only {len(words.words)} ' word' tokens; the first-letter task needs more")
    prompts = first_letter_prompts(lm.tokenizer, words, n_examples=cfg.n_examples, seed=cfg.seed)
    if progress:
        progress(f"running {len(prompts.kept)} first-letter prompts")
    x = collect_positions(lm, sae.cfg.hook_name, prompts.input_ids, prompts.attention_mask, prompts.positions,
                          lock=lock, batch_size=cfg.batch_size)
    kept = prompts.kept
    return absorption_from_activations(x, words.letters[kept], [words.words[i] for i in kept], sae, cfg)
