"""One streaming pass over an analysis corpus -> everything the feature explorer shows, for every feature.

Pipeline (``run_analysis``):

1. Stream contexts through the model, stopping at the SAE's layer (``run_with_cache``), drop position 0
   (the attention sink), encode with the SAE to sparse (token, feature, value) triplets and fold them
   into ``FeatureStats`` (top contexts, histograms, density, max/mean, quantile reservoirs,
   co-activation) — vectorised over features. Tokens in ``exclude_ids`` (the tokenizer's special tokens:
   BOS, EOS between documents, padding) are excluded positions like position 0: never counted, never a
   feature's example or peak, shown with zero activation inside example windows.
2. The sparse triplets of the whole pass are kept (sorted keys ``token * d_sae + feature``) while they
   fit ``cache_bytes``; the per-token activations of every example window are then looked up
   exactly, without a second forward. Past the budget, only the contexts that examples come from are
   forwarded and encoded again.
3. Weight-based views: logit effects and decoder-cosine neighbours (``logits.py``), corpus-independent, so
   read from the file beside the SAE when it holds them for these exact weights (``weight_views.py``).
4. Rows for the ``features`` table (``rows``) plus a summary for the ``analyses`` row.
"""
from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from ..errors import Conflict
from ..model.hooks import run_with_cache
from ..model.loader import LoadedModel
from ..model.placement import tf32_matmuls, to_stats
from ..sae.model import SparseAutoencoder
from .labels import auto_label, consistency, is_degenerate, peak_token_counts, token_key
from .weight_views import weight_views
from .stats import BINS_PER_DECADE, RESERVOIR_PER_BIN, FeatureStats, SparseActs, hist_edges, sparse_encode

Progress = Callable[[str, int, int], None]
"""progress(phase, done, total) — phase 'activations' (tokens) or 'windows' / 'weights' / 'saving'."""


@dataclass
class AnalysisConfig:
    n_top: int = 10
    """Top-activating contexts kept per feature."""
    n_quantiles: int = 5
    """Activation-range buckets (fractions of the feature's max) for spread-out examples."""
    examples_per_quantile: int = 3
    window_before: int = 10
    """Tokens shown before the peak token of an example."""
    window_after: int = 5
    """Tokens shown after the peak token."""
    n_logits: int = 10
    """Top positive and negative output tokens kept per feature."""
    n_neighbours: int = 10
    batch_size: int = 16
    """Contexts per forward."""
    cache_bytes: int = 512 * 1024 * 1024
    """Memory for the sparse activations of the whole pass (beyond it, example windows re-run the model)."""
    seed: int = 0
    tf32: bool = True
    """On CUDA, let the SAE encoder matmul use TF32 tensor cores (``placement.tf32_matmuls``): pre-activations
    within ~1e-3 relative of full float32, statistics accumulated in float32/float64 either way. No effect
    on CPU; False for full float32 on a GPU."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Timings(NamedTuple):
    forward_s: float
    """Model forwards up to the SAE's layer."""
    encode_stats_s: float
    """SAE encoding and statistics (the analysis proper, excluding the model forward)."""
    windows_s: float
    weights_s: float
    """Logit effects and decoder neighbours (read from the cache beside the SAE, or computed)."""
    total_s: float


class AnalysisResult(NamedTuple):
    rows: list[dict[str, Any]]
    """One ``features`` row per feature (label/notes/starred left to the user)."""
    summary: dict[str, Any]
    timings: Timings


class SparseStore:
    """Sparse activations of analysed tokens, addressable by (context, position, feature); kept on the
    device the activations were computed on (the SAE's)."""

    def __init__(self, d_sae: int, ctx_len: int, device: torch.device | str = "cpu") -> None:
        self.d_sae, self.ctx_len = d_sae, ctx_len
        self.device = torch.device(device)
        self._keys: list[Tensor] = []
        self._vals: list[Tensor] = []
        self.nbytes = 0
        self.keys = torch.empty(0, dtype=torch.int64, device=self.device)
        self.vals = torch.empty(0, device=self.device)

    def add(self, tok_global: Tensor, feat: Tensor, val: Tensor) -> None:
        self._keys.append(tok_global * self.d_sae + feat)
        self._vals.append(val)
        self.nbytes += tok_global.shape[0] * 12

    def finish(self) -> None:
        keys = torch.cat(self._keys) if self._keys else torch.empty(0, dtype=torch.int64, device=self.device)
        vals = torch.cat(self._vals) if self._vals else torch.empty(0, device=self.device)
        self.keys, order = keys.sort()
        self.vals = vals[order]
        self._keys, self._vals = [], []

    def lookup(self, ctx: Tensor, pos: Tensor, feat: Tensor) -> Tensor:
        """Activations at broadcastable ``ctx``, ``pos``, ``feat`` (0 where inactive)."""
        q = (ctx * self.ctx_len + pos) * self.d_sae + feat
        if self.keys.numel() == 0:
            return torch.zeros(q.shape, device=q.device)
        q = q.to(self.keys.device)
        i = torch.searchsorted(self.keys, q.reshape(-1)).clamp_(max=self.keys.numel() - 1)
        hit = self.keys[i] == q.reshape(-1)
        return torch.where(hit, self.vals[i], torch.zeros((), device=self.vals.device)).view(q.shape)


def drop_excluded(acts: SparseActs, keep: Tensor) -> SparseActs:
    """Only the activations at kept tokens (``keep [n_tokens]`` bool, on the activations' device)."""
    m = keep[acts.token]
    return SparseActs(acts.token[m], acts.feature[m], acts.value[m], acts.top_idx,
                      acts.top_val * keep[:, None].to(acts.top_val.dtype))


def fold_batch(sae: SparseAutoencoder, x: Tensor, stats: FeatureStats, store: SparseStore | None,
               ctx_offset: int, n_ctx: int, ctx_len: int, cache_bytes: int,
               keep: Tensor | None = None) -> SparseStore | None:
    """The analysis proper for one batch: ``x [n_ctx*(ctx_len-1) d_in]`` (position 0 dropped) -> encode,
    fold into ``stats``, keep the sparse activations in ``store`` (None once past ``cache_bytes``).
    Everything stays on the SAE's device. ``keep [n_ctx*(ctx_len-1)]`` bool: the tokens counted (None: all)."""
    P = ctx_len - 1
    acts = sparse_encode(sae, x)
    if keep is not None:
        acts = drop_excluded(acts, keep.to(acts.token.device))
    stats.update(acts, n_ctx, P, ctx_offset, n_counted=None if keep is None else int(keep.sum()))
    if store is not None:
        tok = acts.token
        store.add((ctx_offset + tok // P) * ctx_len + tok % P + 1, acts.feature, acts.value.float())
        if store.nbytes > cache_bytes:
            store = None
    return store


def _encode_batch(lm: LoadedModel, sae: SparseAutoencoder, ids: Tensor, lock: Any):
    """The SAE's input for one batch of contexts: ``[batch*(pos-1) d_model]`` float32 on the SAE's device
    (the forward runs in the model's dtype; its block may sit on another device of a dispatched model)."""
    with lock:
        res = run_with_cache(lm.model, ids.to(lm.device), [sae.cfg.hook_name])
    a = res.cache[sae.cfg.hook_name]  # [batch pos d_model]
    return to_stats(a[:, 1:].reshape(-1, a.shape[-1]), sae.W_enc.device)


@torch.no_grad()
def run_analysis(
    lm: LoadedModel,
    sae: SparseAutoencoder,
    contexts: Tensor,
    vocab: list[str],
    cfg: AnalysisConfig | None = None,
    *,
    progress: Progress | None = None,
    lock: Any = None,
    cancel: threading.Event | None = None,
    exclude_ids: list[int] | None = None,
    weights_cache: str | Path | None = None,
) -> AnalysisResult:
    """Analyse every feature of ``sae`` over ``contexts [n_ctx ctx]`` (position 0 and the tokens in
    ``exclude_ids`` excluded throughout). ``weights_cache``: the file (beside the SAE) that keeps the
    corpus-independent logit effects and neighbours across analyses (None: computed every time)."""
    cfg = cfg or AnalysisConfig()
    lock = lock if lock is not None else nullcontext()
    t_start = time.perf_counter()
    n_ctx, T = contexts.shape
    if T < 2:
        raise ValueError("contexts need at least 2 tokens (position 0 is excluded)")
    P = T - 1
    d_sae = sae.cfg.d_sae
    dev = sae.W_enc.device  # the model's main device: every statistic and lookup stays there
    contexts = contexts.to(dev)
    stats = FeatureStats(d_sae, cfg.n_top, seed=cfg.seed, device=dev)
    store: SparseStore | None = SparseStore(d_sae, T, dev)
    keep_all = _kept(contexts, exclude_ids)  # [n_ctx P] bool, or None: every position after 0 counts
    total_tokens = n_ctx * P if keep_all is None else int(keep_all.sum())
    t_fwd = t_enc = 0.0
    for i in range(0, n_ctx, cfg.batch_size):
        if cancel is not None and cancel.is_set():
            raise Conflict("analysis cancelled")
        ids = contexts[i: i + cfg.batch_size]
        t0 = time.perf_counter()
        x = _encode_batch(lm, sae, ids, lock)  # [batch*P d_model]
        t1 = time.perf_counter()
        keep = None if keep_all is None else keep_all[i: i + cfg.batch_size].reshape(-1)
        with tf32_matmuls(cfg.tf32):
            store = fold_batch(sae, x, stats, store, i, ids.shape[0], T, cfg.cache_bytes, keep)
        t_enc += time.perf_counter() - t1
        t_fwd += t1 - t0
        if progress:
            progress("activations", min(i + cfg.batch_size, n_ctx) * P, n_ctx * P)

    t0 = time.perf_counter()
    top = stats.top_contexts()  # [K d_sae]
    q_ctx, q_pos, q_val, q_bucket = _quantile_examples(stats, cfg)
    # every (feature, context, peak position) that needs a window, top contexts first
    feat_ids = torch.arange(d_sae, device=dev)
    req_feat = torch.cat([feat_ids.expand(cfg.n_top, d_sae).reshape(-1),
                          feat_ids[:, None].expand_as(q_ctx).reshape(-1)])
    req_ctx = torch.cat([top.ctx.reshape(-1), q_ctx.reshape(-1)])
    req_pos = torch.cat([top.pos.reshape(-1), q_pos.reshape(-1)])
    if store is None:
        store = _recompute_store(lm, sae, contexts, req_ctx[req_ctx >= 0].unique(), cfg, lock, keep_all)
    else:
        store.finish()
    W = min(cfg.window_before + cfg.window_after + 1, P)
    valid = req_ctx >= 0
    start = (req_pos - cfg.window_before).clamp(min=1).clamp(max=T - W)
    win_pos = start[:, None] + torch.arange(W, device=dev)  # [n_req W]
    safe_ctx = req_ctx.clamp(min=0)
    win_act = store.lookup(safe_ctx[:, None], win_pos, req_feat[:, None])
    win_tok = contexts[safe_ctx[:, None], win_pos]
    if progress:
        progress("windows", 1, 1)
    t_win = time.perf_counter() - t0

    t0 = time.perf_counter()
    views = weight_views(lm.model, sae, cfg.n_logits, cfg.n_neighbours, weights_cache)
    logits, neigh = views.logits, views.neighbours
    coact = stats.coactivation(cfg.n_neighbours)
    if progress:
        progress("weights", 1, 1)
    t_weights = time.perf_counter() - t0

    rows = _build_rows(stats, cfg, vocab, contexts, top, (q_ctx, q_pos, q_val, q_bucket), valid, start,
                       win_tok, win_act, logits, neigh, coact)
    t_total = time.perf_counter() - t_start
    timings = Timings(t_fwd, t_enc, t_win, t_weights, t_total)
    summary = {
        "n_contexts": int(n_ctx), "context_size": int(T), "n_tokens": int(total_tokens),
        "excluded_tokens": int(n_ctx * P - total_tokens),
        "d_sae": d_sae, "hook_name": sae.cfg.hook_name, "model_id": lm.model_id,
        "dead": int((stats.count == 0).sum()), "mean_l0": float(stats.count.sum()) / max(total_tokens, 1),
        "coactivation": coact is not None, "weight_views_cached": views.cached, "timings": timings._asdict(), "config": cfg.to_dict(),
        "histogram_bins": {"scale": "log10", "per_decade": BINS_PER_DECADE},
    }
    return AnalysisResult(rows, summary, timings)


def _kept(contexts: Tensor, exclude_ids: list[int] | None) -> Tensor | None:
    """``[n_ctx ctx-1]`` True where a token (after position 0) counts: not one of ``exclude_ids``."""
    if not exclude_ids:
        return None
    return ~torch.isin(contexts[:, 1:], torch.tensor(sorted(set(exclude_ids)), dtype=contexts.dtype))


def _recompute_store(lm: LoadedModel, sae: SparseAutoencoder, contexts: Tensor, needed: Tensor,
                     cfg: AnalysisConfig, lock: Any, keep_all: Tensor | None = None) -> SparseStore:
    T = contexts.shape[1]
    P = T - 1
    store = SparseStore(sae.cfg.d_sae, T, contexts.device)
    for i in range(0, needed.shape[0], cfg.batch_size):
        cids = needed[i: i + cfg.batch_size]
        x = _encode_batch(lm, sae, contexts[cids], lock)
        with tf32_matmuls(cfg.tf32):
            acts = sparse_encode(sae, x)
        if keep_all is not None:
            acts = drop_excluded(acts, keep_all[cids].reshape(-1).to(acts.token.device))
        tok = acts.token
        store.add(cids[tok // P] * T + tok % P + 1, acts.feature, acts.value.float())
    store.finish()
    return store


def _quantile_examples(stats: FeatureStats, cfg: AnalysisConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Spread-out examples: bucket q covers ``(q/Q, (q+1)/Q]`` of the feature's max; within a bucket the
    reservoir samples are drawn weighted by their histogram bin's count (Efraimidis–Spirakis keys), so
    examples follow the activation distribution. Returns ``[d_sae Q*E]`` ctx, pos, value, bucket."""
    res = stats.reservoir()  # [d_sae S]
    Q, E = cfg.n_quantiles, cfg.examples_per_quantile
    mx = stats.max[:, None].clamp_min(1e-12)
    bucket = (res.value / mx * Q).ceil().long().clamp(1, Q) - 1
    S = res.value.shape[1]
    bin_count = stats.histograms().float().repeat_interleave(RESERVOIR_PER_BIN, dim=1)[:, :S]
    dev = res.value.device
    g = torch.Generator(device=dev).manual_seed(cfg.seed + 1)
    u = torch.rand(res.value.shape, generator=g, device=dev).clamp_min(1e-12)
    key = u.log() / bin_count.clamp_min(1.0)  # log of u^(1/w)
    ok = res.ctx >= 0
    out = [[], [], [], []]
    for q in range(Q - 1, -1, -1):  # highest bucket first
        k = key.masked_fill(~(ok & (bucket == q)), float("-inf"))
        v, j = k.topk(min(E, S), dim=1)
        has = v > float("-inf")
        out[0].append(torch.where(has, res.ctx.gather(1, j), torch.full_like(j, -1)))
        out[1].append(res.pos.gather(1, j))
        out[2].append(res.value.gather(1, j))
        out[3].append(torch.full_like(j, q))
    return tuple(torch.cat(o, dim=1) for o in out)  # type: ignore[return-value]


def _trimmed_histogram(counts: list[int], edges: list[float]) -> dict[str, list]:
    nz = [i for i, c in enumerate(counts) if c]
    if not nz:
        return {"edges": [], "counts": []}
    lo, hi = nz[0], nz[-1] + 1
    return {"edges": edges[lo: hi + 1], "counts": counts[lo:hi]}


def _build_rows(stats, cfg, vocab, contexts, top, quant, valid, start, win_tok, win_act, logits, neigh,
                coact) -> list[dict[str, Any]]:
    """Assemble the JSON rows (the only per-feature Python loop: serialisation, once, at the end)."""
    d_sae, K = stats.d_sae, cfg.n_top
    q_ctx, q_pos, q_val, q_bucket = quant
    QE = q_ctx.shape[1]
    edges = [float(f"{e:.6g}") for e in hist_edges().tolist()]
    hist = stats.histograms().tolist()
    density, mx, mean = stats.density().tolist(), stats.max.tolist(), stats.mean_active().tolist()
    top_ctx, top_pos, top_val = top.ctx.tolist(), top.pos.tolist(), top.value.tolist()  # [K][d_sae]
    peak_ids = contexts[top.ctx.clamp(min=0), top.pos].tolist()
    q_ctx_l, q_pos_l, q_val_l, q_b_l = q_ctx.tolist(), q_pos.tolist(), q_val.tolist(), q_bucket.tolist()
    valid_l, start_l = valid.tolist(), start.tolist()
    win_tok_l = win_tok.tolist()
    win_act_l = win_act.double().round(decimals=5).tolist()
    lg = [t.tolist() for t in logits]
    nb_i, nb_v = neigh.index.tolist(), neigh.score.tolist()
    co = (coact[0].tolist(), coact[1].tolist()) if coact is not None else None
    Q = cfg.n_quantiles

    def window(r: int, ctx: int, pos: int, value: float) -> dict[str, Any]:
        ids = win_tok_l[r]
        return {"context": ctx, "position": pos, "max": value, "start": start_l[r],
                "tokens": [vocab[t] if t < len(vocab) else "" for t in ids], "token_ids": ids,
                "activations": win_act_l[r]}

    rows = []
    for f in range(d_sae):
        tops = [window(k * d_sae + f, top_ctx[k][f], top_pos[k][f], top_val[k][f])
                for k in range(K) if valid_l[k * d_sae + f]]
        peak_tok = [peak_ids[k][f] for k in range(K) if top_ctx[k][f] >= 0]
        peaks = [vocab[t] for t in peak_tok]
        buckets = []
        for qi in range(Q):
            q = Q - 1 - qi
            exs = [window(K * d_sae + f * QE + j, q_ctx_l[f][j], q_pos_l[f][j], q_val_l[f][j])
                   for j in range(QE) if q_b_l[f][j] == q and q_ctx_l[f][j] >= 0]
            buckets.append({"label": f"{q / Q:.2f}–{(q + 1) / Q:.2f} of max", "lo": q / Q * mx[f],
                            "hi": (q + 1) / Q * mx[f], "examples": exs})
        pos_tok = [{"token": vocab[i], "id": i, "value": v} for i, v in zip(lg[0][f], lg[1][f])]
        neg_tok = [{"token": vocab[i], "id": i, "value": v} for i, v in zip(lg[2][f], lg[3][f])]
        lo_v, hi_v = lg[4][f], lg[5][f]
        nlb = len(lg[6][f])
        top_tokens = [{"token": vocab[t], "id": t, "count": c, "key": token_key(vocab[t])}
                      for t, c in peak_token_counts(peak_tok)]
        data = {
            "top_contexts": tops,
            "quantiles": buckets,
            "histogram": _trimmed_histogram(hist[f], edges),
            "logits": {"positive": pos_tok, "negative": neg_tok,
                       "histogram": {"edges": [lo_v + (hi_v - lo_v) * i / nlb for i in range(nlb + 1)],
                                     "counts": lg[6][f]}},
            "neighbours": [{"index": i, "score": s} for i, s in zip(nb_i[f], nb_v[f])],
            "coactive": None if co is None else
            [{"index": i, "score": s} for i, s in zip(co[0][f], co[1][f]) if s > 0],
        }
        rows.append({
            "idx": f, "auto_label": auto_label(peaks, [t["token"] for t in pos_tok]),
            "consistency": consistency(peaks), "degenerate": is_degenerate(peaks),
            "density": density[f], "max_act": mx[f], "mean_act": mean[f],
            "top_tokens_json": top_tokens, "data_json": data,
        })
    return rows

