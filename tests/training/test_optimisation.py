"""Optimisation options (issue #14): per-SAE gradient clipping in SAELens's loss units, AuxK on raw or ReLU'd
dead pre-activations, a short training that lands where a plain dense trainer does, and the LR finder's
suggestion really being the optimiser's learning rate. Every expectation is computed independently here."""
from __future__ import annotations

import logging
import math
import time

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder
from interpretability_workbench.training.config import TrainingConfig
from interpretability_workbench.training.lit_module import SAETrainingModule
from interpretability_workbench.training.objectives import DeadTracker, topk_step
from interpretability_workbench.training.sweep import SweepSpec

HOOK = "blocks.0.hook_resid_post"


def _sae(d_in: int, d_sae: int, k: int, seed: int = 0) -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, k=k, hook_name=HOOK))
    sae.reset_parameters(seed=seed)
    return sae


def _cfg(**kw) -> TrainingConfig:
    base = dict(hook_names=[HOOK], d_sae=64, k=4, lr=3e-3, total_tokens=256 * 40, batch_size=256,
                accelerator="cpu", dead_after_tokens=1024, normalize=False, b_dec_init="zeros")
    base.update(kw)
    return TrainingConfig(**base)


def _sparse_data(n: int, d_in: int = 16, n_true: int = 48, active: int = 3, seed: int = 1) -> torch.Tensor:
    """Tokens that are sums of a few of ``n_true`` random directions (something an SAE can learn)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_true, d_in, generator=g)
    dirs /= dirs.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(n_true, generator=g)[:active] for _ in range(n)])
    coef = torch.rand(n, active, generator=g) * 2 + 0.5
    return (coef[:, :, None] * dirs[idx]).sum(1) + 0.3 + 0.05 * torch.randn(n, d_in, generator=g)


def _dense_topk_grads(sae: SparseAutoencoder, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of SAELens's loss (squared error summed over d_in, mean over tokens) through dense
    matmuls, with the decoder-parallel component projected out (what the module does before clipping)."""
    p = {n: t.detach().clone().requires_grad_(True) for n, t in sae.named_parameters()}
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    vals, idx = pre.topk(sae.cfg.k, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    loss = (f @ p["W_dec"] + p["b_dec"] - x).pow(2).sum(1).mean()
    loss.backward()
    g = {n: t.grad for n, t in p.items()}
    w = p["W_dec"].detach()
    g["W_dec"] = g["W_dec"] - (g["W_dec"] * w).sum(1, keepdim=True) * w / w.pow(2).sum(1, keepdim=True)
    return g


def test_clipping_bounds_each_members_grad_norm_on_its_own() -> None:
    x = _sparse_data(128) * 3
    cfg = _cfg(sweep=SweepSpec(k=[2, 8]), grad_clip_norm=0.5)
    module = SAETrainingModule([_sae(16, 64, 2), _sae(16, 64, 8)], cfg)
    module.training_step(x, 0).backward()
    module.on_before_optimizer_step(None)  # type: ignore[arg-type]
    clipped_any = False
    for sae, res, norm in zip(module.saes, module.last, module.grad_norms):
        ref = _dense_topk_grads(sae, x)
        ref_norm = math.sqrt(sum(float(g.pow(2).sum()) for g in ref.values()))
        assert norm == pytest.approx(ref_norm, rel=1e-4)
        factor = min(1.0, 0.5 / ref_norm)
        clipped_any |= factor < 1
        got_norm = math.sqrt(sum(float(t.grad.pow(2).sum()) for t in sae.parameters()))
        assert got_norm <= 0.5 * (1 + 1e-4)
        for n, t in sae.named_parameters():  # the module's gradients are SAELens's, clipped
            torch.testing.assert_close(t.grad, ref[n] * factor, rtol=1e-4, atol=1e-6)
    assert clipped_any
    # the k=8 member alone gets exactly the step it gets inside the sweep
    solo = SAETrainingModule([_sae(16, 64, 8)], _cfg(k=8, grad_clip_norm=0.5))
    solo.training_step(x, 0).backward()
    solo.on_before_optimizer_step(None)  # type: ignore[arg-type]
    for a, b in zip(solo.saes[0].parameters(), module.saes[1].parameters()):
        torch.testing.assert_close(a.grad, b.grad)


def test_no_clipping_leaves_gradients_alone() -> None:
    x = _sparse_data(128) * 3
    module = SAETrainingModule([_sae(16, 64, 4)], _cfg(grad_clip_norm=None))
    module.training_step(x, 0).backward()
    module.on_before_optimizer_step(None)  # type: ignore[arg-type]
    ref = _dense_topk_grads(module.saes[0], x)
    assert module.grad_norms == []
    assert math.sqrt(sum(float(g.pow(2).sum()) for g in ref.values())) > 0.5  # clipping at 0.5 would have acted
    for n, t in module.saes[0].named_parameters():
        torch.testing.assert_close(t.grad, ref[n], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("aux_k_on", ["raw", "post_relu"])
def test_aux_k_loss_and_grads_match_a_hand_computation(aux_k_on: str) -> None:
    torch.manual_seed(0)
    d_in, d_sae, k, k_aux = 8, 32, 3, 6
    sae = _sae(d_in, d_sae, k)
    with torch.no_grad():
        sae.b_enc[:16] -= 0.6  # dead latents straddle zero: some of their pre-activations are negative
        sae.b_dec.copy_(torch.randn(d_in) * 0.1)
    x = torch.randn(64, d_in)
    tracker = DeadTracker(d_sae, dead_after_tokens=10)
    tracker.tokens_since_fired[:16] = 10  # latents 0..15 are dead
    res = topk_step(sae, x, tracker, k_aux, aux_coef=0.25, aux_k_on=aux_k_on)
    res.loss.backward()

    p = {n: t.detach().clone().requires_grad_(True) for n, t in sae.named_parameters()}
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    vals, idx = pre.topk(k, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    err = f @ p["W_dec"] + p["b_dec"] - x
    var = (x - x.mean(0)).pow(2).sum()
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[:16] = True
    avals, aidx = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
    assert bool((avals < 0).any()) and bool((avals > 0).any())  # raw and ReLU really differ here
    a = avals if aux_k_on == "raw" else avals.relu()
    e_hat = torch.zeros_like(pre).scatter(-1, aidx, a) @ p["W_dec"]
    aux = min(16 / k_aux, 1.0) * (e_hat + err.detach()).pow(2).sum() / var
    # minimised in SAELens's units: squared error (and the AuxK term) summed over d_in, averaged over tokens
    loss = (err.pow(2).sum() + 0.25 * aux * var.detach()) / 64
    loss.backward()
    assert res.aux == pytest.approx(float(aux), rel=1e-5)
    assert float(res.loss) == pytest.approx(float(loss), rel=1e-5)
    assert res.fvu == pytest.approx(float(err.pow(2).sum() / var), rel=1e-5)
    for n, t in sae.named_parameters():
        torch.testing.assert_close(t.grad, p[n].grad, rtol=1e-4, atol=1e-6)


def test_raw_and_post_relu_aux_differ() -> None:
    sae = _sae(8, 32, 3)
    with torch.no_grad():
        sae.b_enc[:16] -= 0.6
    x = torch.randn(64, 8)
    out = {}
    for on in ("raw", "post_relu"):
        tracker = DeadTracker(32, dead_after_tokens=10)
        tracker.tokens_since_fired[:16] = 10
        out[on] = topk_step(sae, x, tracker, 6, 0.25, on).aux
    assert out["raw"] != pytest.approx(out["post_relu"], rel=1e-3)


def _dense_reference(x: torch.Tensor, cfg: TrainingConfig, init: SparseAutoencoder) -> SparseAutoencoder:
    """A plain TopK trainer: dense matmuls, raw AuxK on dead latents, Adam with warm-up / constant / linear
    decay, decoder-parallel gradients removed, per-SAE clipping of SAELens's gradient norm, unit-norm rows."""
    sae = _sae(x.shape[1], cfg.d_sae, cfg.k)
    sae.load_state_dict(init.state_dict())
    b, n = cfg.batch_size, cfg.total_steps
    warm, decay = max(1, int(n * 0.05)), int(n * 0.2)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    since = torch.zeros(cfg.d_sae, dtype=torch.long)
    k_aux = x.shape[1] // 2
    for step in range(n):
        batch = x[step * b: (step + 1) * b]
        factor = (step + 1) / warm if step < warm else (max(0.0, (n - step) / decay) if step >= n - decay else 1.0)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * factor
        pre = (batch - sae.b_dec) @ sae.W_enc + sae.b_enc
        vals, idx = pre.topk(cfg.k, dim=-1)
        f = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
        err = f @ sae.W_dec + sae.b_dec - batch
        per_token = err.pow(2).sum(1).mean()  # SAELens's units; Adam ignores the constant scale
        loss = per_token
        dead = since >= cfg.dead_after_tokens
        n_dead = int(dead.sum())
        if n_dead:
            avals, aidx = pre.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1)
            e_hat = torch.zeros_like(pre).scatter(-1, aidx, avals) @ sae.W_dec
            loss = loss + cfg.aux_k_coefficient * min(n_dead / k_aux, 1.0) * (e_hat + err.detach()).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            w, g = sae.W_dec, sae.W_dec.grad
            g -= (g * w).sum(1, keepdim=True) * w
            norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in sae.parameters()))
            if norm > cfg.grad_clip_norm:
                for p in sae.parameters():
                    p.grad *= cfg.grad_clip_norm / norm
        opt.step()
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True)
            fired = torch.zeros(cfg.d_sae, dtype=torch.bool)
            fired[idx[vals > 0]] = True
            since += batch.shape[0]
            since[fired] = 0
    return sae


def _fvu(sae: SparseAutoencoder, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((sae(x).x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def test_short_training_matches_a_dense_reference_trainer() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cfg = _cfg(total_tokens=256 * 60, dead_after_tokens=512, lr=1e-2)
    data = _sparse_data(256 * 60 + 2048)
    train, held = data[:-2048], data[-2048:]
    init = _sae(16, 64, 4, seed=3)
    start = _fvu(init, held)
    ref = _dense_reference(train, cfg, init)

    ours = _sae(16, 64, 4)
    ours.load_state_dict(init.state_dict())
    module = SAETrainingModule([ours], cfg)
    trainer = pl.Trainer(max_steps=cfg.total_steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=DataLoader(list(train.split(cfg.batch_size)), batch_size=None))
    f_ours, f_ref = _fvu(ours, held), _fvu(ref, held)
    assert f_ref < 0.5 * start  # the reference really trains
    assert module.grad_norms and max(module.grad_norms) > 0  # clipping was on
    assert abs(f_ours - f_ref) < 0.005, (f_ours, f_ref, start)  # no clipping alone moves it by ~0.02


def test_lr_finder_trains_with_the_tuners_suggestion(state, make_config, monkeypatch) -> None:
    from lightning.pytorch.tuner import Tuner

    found: list = []
    optimizers: list[torch.optim.Optimizer] = []
    real_find, real_configure = Tuner.lr_find, SAETrainingModule.configure_optimizers

    def spy_find(self, *a, **kw):
        out = real_find(self, *a, **kw)
        found.append(out)
        return out

    def spy_configure(self):
        out = real_configure(self)
        optimizers.append(out["optimizer"])
        return out

    monkeypatch.setattr(Tuner, "lr_find", spy_find)
    monkeypatch.setattr(SAETrainingModule, "configure_optimizers", spy_configure)
    cfg = make_config(total_tokens=8192, lr_finder=True, ce_eval_contexts=0, checkpoint_every=0, eval_tokens=1024,
                      sweep={"k": [4, 8]})
    row = state.training.wait(state.training.start(cfg), timeout=300)
    assert row.status == "done", row.error
    assert len(found) == 1 and found[0] is not None
    suggestion = found[0].suggestion()
    assert suggestion is not None and suggestion != pytest.approx(cfg.lr)
    fit_opt = optimizers[-1]  # the training run's optimiser (the finder's came first)
    assert [g["initial_lr"] for g in fit_opt.param_groups] == pytest.approx([suggestion] * 2, rel=1e-12)


def test_options_are_validated_and_recorded(client) -> None:
    with pytest.raises(ValueError, match="aux_k_on"):
        _cfg(aux_k_on="relu")
    with pytest.raises(ValueError, match="grad_clip_norm"):
        _cfg(grad_clip_norm=0.0)
    assert _cfg().to_dict()["grad_clip_norm"] == 1.0 and _cfg().to_dict()["aux_k_on"] == "raw"
    assert TrainingConfig.from_dict(_cfg().to_dict()) == _cfg()  # round trip of a new run's config
    old = {k: v for k, v in _cfg().to_dict().items() if k not in ("grad_clip_norm", "aux_k_on")}
    resumed = TrainingConfig.from_dict(old)  # a run recorded before the options resumes as it began
    assert resumed.grad_clip_norm is None and resumed.aux_k_on == "post_relu"
    body = dict(layer=1, hook="resid_post", d_sae=64, k=4, total_tokens=1024, batch_size=512, context_size=64,
                checkpoint_every=0, eval_tokens=512, ce_eval_contexts=0, analyze=False, accelerator="cpu")
    bad = client.post("/api/training", json={**body, "aux_k_on": "relu"})
    assert bad.status_code == 422
    assert client.post("/api/training", json={**body, "grad_clip_norm": 0}).status_code == 422
    r = client.post("/api/training", json={**body, "grad_clip_norm": None, "aux_k_on": "post_relu"})
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    for _ in range(1500):
        d = client.get(f"/api/training/{run_id}").json()
        if d["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert d["status"] == "done", d
    assert d["config"]["grad_clip_norm"] is None and d["config"]["aux_k_on"] == "post_relu"
