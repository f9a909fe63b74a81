"""Final metrics of trained SAEs on held-out contexts: FVU / explained variance, MSE, L0, feature density
(and its histogram), and the SAE spliced into the model: CE loss clean vs zero-ablation vs SAE, KL."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..activations.store import iter_activations
from ..model.hooks import hooks
from ..model.loader import LoadedModel
from ..sae.model import SparseAutoencoder

DENSITY_BINS = [-10.0, *[x / 2 for x in range(-12, 1)]]  # log10 density edges: -inf..-6, ..., 0


class HeldOutMetrics(NamedTuple):
    fvu: float
    explained_variance: float
    mse: float
    l0: float
    n_tokens: int
    density: Tensor
    """Fraction of held-out tokens on which each latent fired ``[d_sae]``."""

    def histogram(self) -> dict[str, list[float]]:
        """Histogram of log10 feature density (never-firing latents in the first bin)."""
        logd = torch.log10(self.density.clamp_min(1e-10))
        edges = torch.tensor(DENSITY_BINS)
        counts = torch.histogram(logd.float().cpu(), bins=edges).hist
        return {"log10_density_edges": edges.tolist(), "counts": counts.tolist()}


@torch.no_grad()
def held_out_metrics(saes: list[SparseAutoencoder], batches: list[dict[str, Tensor]]) -> list[HeldOutMetrics]:
    out = []
    for sae in saes:
        h = sae.cfg.hook_name
        x = torch.cat([b[h] for b in batches]).to(sae.W_enc.device)  # [n d_in]
        err_sq = 0.0
        n_active = 0
        fired = torch.zeros(sae.cfg.d_sae, device=x.device)
        for s in range(0, x.shape[0], 4096):
            xb = x[s: s + 4096]
            res = sae(xb)
            err_sq += float((res.x_hat - xb).pow(2).sum())
            active = res.feature_acts > 0
            n_active += int(active.sum())
            fired += active.sum(0)
        var = float((x - x.mean(0)).pow(2).sum().clamp_min(1e-12))
        n = x.shape[0]
        fvu = err_sq / var
        out.append(HeldOutMetrics(fvu, 1 - fvu, err_sq / (n * x.shape[1]), n_active / n, n, (fired / n).cpu()))
    return out


def held_out_batches(contexts: Tensor, n_tokens: int, batch_size: int) -> int:
    """Model forwards ``collect_held_out`` makes for ``n_tokens`` rows."""
    per = contexts.shape[1] - 1
    return min(-(-contexts.shape[0] // batch_size), -(-(-(-n_tokens // per)) // batch_size))


def collect_held_out(lm: LoadedModel, contexts: Tensor, hook_names: list[str], n_tokens: int,
                     batch_size: int, lock: Any = None,
                     on_batch: Callable[[int], None] | None = None) -> list[dict[str, Tensor]]:
    """Activations ``{hook: [n d]}`` per model batch of the first ``n_tokens`` rows; ``on_batch(i)`` after
    the i-th forward (1-based)."""
    out = []
    it = iter_activations(lm, contexts, hook_names, batch_size=batch_size, exclude_first=True, max_tokens=n_tokens)
    while True:
        with lock or nullcontext():
            try:
                out.append({h: a.cpu() for h, a in next(it).items()})
            except StopIteration:
                return out
        if on_batch is not None:
            on_batch(len(out))


class SpliceMetrics(NamedTuple):
    ce_clean: float
    ce_zero: float
    ce_sae: float
    ce_loss_recovered: float
    """(zero - sae) / (zero - clean): 1 = as good as the clean model, 0 = as bad as zero-ablation."""
    kl_sae: float
    """Mean KL(clean || with SAE) per predicted token."""
    kl_zero: float


def _loss_and_logp(lm: LoadedModel, ids: Tensor, fwd: dict) -> tuple[float, Tensor]:
    with hooks(lm.model, fwd):
        logits = lm.model(input_ids=ids, use_cache=False).logits[:, 1:-1].float()  # predict from pos>=1
    logp = logits.log_softmax(-1)
    target = ids[:, 2:]
    ce = F.nll_loss(logp.reshape(-1, logp.shape[-1]), target.reshape(-1))
    return float(ce), logp


@torch.no_grad()
def splice_metrics(lm: LoadedModel, saes: list[SparseAutoencoder], contexts: Tensor, lock: Any = None,
                   on_forward: Callable[[int], None] | None = None) -> list[SpliceMetrics]:
    """Replace each hook's activation (positions >= 1; position 0 kept) by zeros or the SAE's
    reconstruction and compare next-token CE loss and KL with the clean model: one clean forward, one
    zero-ablation forward per hook (shared by the SAEs at that hook) and one per SAE; ``on_forward(i)``
    after the i-th."""
    ids = contexts.to(lm.device)
    out = []
    done = [0]

    def tick() -> None:
        done[0] += 1
        if on_forward is not None:
            on_forward(done[0])
    zeros: dict[str, tuple[float, Tensor]] = {}
    with lock or nullcontext():
        ce_clean, logp_clean = _loss_and_logp(lm, ids, {})
        tick()
        for sae in saes:
            def zero(a: Tensor) -> Tensor:
                a = a.clone()
                a[:, 1:] = 0
                return a

            def splice(a: Tensor, sae: SparseAutoencoder = sae) -> Tensor:
                a = a.clone()
                x = a[:, 1:].reshape(-1, a.shape[-1]).float()
                a[:, 1:] = sae(x).x_hat.reshape(a.shape[0], -1, a.shape[-1]).to(a.dtype)
                return a

            if sae.cfg.hook_name not in zeros:
                zeros[sae.cfg.hook_name] = _loss_and_logp(lm, ids, {sae.cfg.hook_name: zero})
                tick()
            ce_zero, logp_zero = zeros[sae.cfg.hook_name]
            ce_sae, logp_sae = _loss_and_logp(lm, ids, {sae.cfg.hook_name: splice})
            tick()

            def kl(lp: Tensor) -> float:
                return float((logp_clean.exp() * (logp_clean - lp)).sum(-1).mean())

            denom = ce_zero - ce_clean
            rec = (ce_zero - ce_sae) / denom if abs(denom) > 1e-9 else float("nan")
            out.append(SpliceMetrics(ce_clean, ce_zero, ce_sae, rec, kl(logp_sae), kl(logp_zero)))
    return out


def final_metrics_dict(h: HeldOutMetrics, s: SpliceMetrics | None, dead_fraction: float,
                       peak_memory: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "held_out_fvu": h.fvu, "explained_variance": h.explained_variance, "held_out_mse": h.mse,
        "l0": h.l0, "held_out_tokens": h.n_tokens, "dead_fraction": dead_fraction,
        "held_out_dead_fraction": float((h.density == 0).float().mean()),
        "density_histogram": h.histogram(), "peak_memory_bytes": peak_memory,
    }
    if s is not None:
        d.update(ce_clean=s.ce_clean, ce_zero_ablation=s.ce_zero, ce_with_sae=s.ce_sae,
                 ce_loss_recovered=s.ce_loss_recovered, kl_with_sae=s.kl_sae, kl_zero_ablation=s.kl_zero)
    d.update(extra or {})
    return d
