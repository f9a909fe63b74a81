"""GPU SAE training throughput: TopK, d_in 4096, d_sae 65,536, k 64, batch 4096, on bf16 activations.

Ours: the workbench's training step (``SAETrainingModule``: sparse TopK encode/decode kernels with AuxK, Adam,
parallel-gradient removal, decoder renormalisation), driven step by step as Lightning's automatic
optimisation does. Baselines, timed in the same run on the same batches:

* roofline — the bare encoder matmul ``[batch d_in] @ [d_in d_sae]`` in float32 (the one dense product a
  sparse TopK step cannot avoid): target ours >= 50% of its tokens/s;
* dense — a plain PyTorch TopK SAE step (dense encoder, dense scatter of the top k, dense decoder, autograd,
  Adam): target ours >= 3x its tokens/s.

Activations are synthetic bf16 (a low-rank signal plus noise, made on the device), upcast per batch as the
activation stream does. The last line is the two ratios.

    python bench/gpu_sae_training.py                       # CUDA, real shape
    python bench/gpu_sae_training.py --device cpu --d-in 64 --d-sae 1024 --k 8 --batch 256 --steps 3   # smoke
"""
from __future__ import annotations

import argparse
import gc
import json

import torch

from gpu_common import default_device, device_name, median, sync, timed


def activations(n_batches: int, batch: int, d_in: int, device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(seed)
    basis = torch.randn(256, d_in, generator=g, device=device) / 16
    return [(torch.randn(batch, 256, generator=g, device=device) @ basis
             + 0.05 * torch.randn(batch, d_in, generator=g, device=device)).to(torch.bfloat16)
            for _ in range(n_batches)]


def ours_step_fn(d_in: int, d_sae: int, k: int, batches: list[torch.Tensor], device: torch.device):
    from interpretability_workbench.sae.config import SAEConfig
    from interpretability_workbench.sae.model import SparseAutoencoder
    from interpretability_workbench.training.config import TrainingConfig
    from interpretability_workbench.training.lit_module import SAETrainingModule

    cfg = TrainingConfig(hook_names=["blocks.0.hook_resid_post"], d_sae=d_sae, k=k, batch_size=batches[0].shape[0],
                         total_tokens=batches[0].shape[0] * 1000, lr=2e-4)
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k,
                                      hook_name="blocks.0.hook_resid_post"))
    sae.reset_parameters(seed=0)
    module = SAETrainingModule([sae.to(device)], cfg).to(device)
    opt_cfg = module.configure_optimizers()
    opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    state = {"i": 0}

    def step() -> None:
        i = state["i"]
        state["i"] += 1
        batch = batches[i % len(batches)].float()  # the stream hands float32 activations to the module
        opt.zero_grad(set_to_none=True)
        loss = module.training_step(batch, i)
        loss.backward()
        module.on_before_optimizer_step(opt)
        opt.step()
        for s in module.saes:
            s.normalize_decoder()
        sched.step()

    return step, module


def dense_step_fn(d_in: int, d_sae: int, k: int, batches: list[torch.Tensor], device: torch.device):
    g = torch.Generator(device=device).manual_seed(0)
    w = torch.randn(d_sae, d_in, generator=g, device=device)
    w /= w.norm(dim=1, keepdim=True)
    W_dec = torch.nn.Parameter(w.clone())
    W_enc = torch.nn.Parameter(w.T.contiguous())
    b_enc = torch.nn.Parameter(torch.zeros(d_sae, device=device))
    b_dec = torch.nn.Parameter(torch.zeros(d_in, device=device))
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=2e-4)
    state = {"i": 0}

    def step() -> None:
        x = batches[state["i"] % len(batches)].float()
        state["i"] += 1
        opt.zero_grad(set_to_none=True)
        pre = (x - b_dec) @ W_enc + b_enc
        vals, idx = pre.topk(k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
        x_hat = acts @ W_dec + b_dec
        loss = (x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))

    return step, (W_enc, W_dec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=default_device())
    ap.add_argument("--d-in", type=int, default=4096)
    ap.add_argument("--d-sae", type=int, default=65_536)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per method")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    batches = activations(8, a.batch, a.d_in, device)
    print(f"device {device_name(device)}; TopK d_in {a.d_in}, d_sae {a.d_sae}, k {a.k}, batch {a.batch}, "
          f"bf16 activations; {a.steps} timed steps each")

    step, keep = ours_step_fn(a.d_in, a.d_sae, a.k, batches, device)
    t_ours = median(timed(step, device, repeats=a.steps, warmup=3))
    del step, keep
    gc.collect()

    w = torch.randn(a.d_in, a.d_sae, device=device)
    xs = [b.float() for b in batches]
    it = iter(range(10 ** 9))
    t_roof = median(timed(lambda: torch.mm(xs[next(it) % len(xs)], w), device, repeats=a.steps, warmup=3))
    del w, xs
    gc.collect()

    step, keep = dense_step_fn(a.d_in, a.d_sae, a.k, batches, device)
    t_dense = median(timed(step, device, repeats=a.steps, warmup=3))
    del step, keep
    gc.collect()
    sync(device)

    tps = {name: a.batch / t for name, t in (("ours", t_ours), ("roofline", t_roof), ("dense", t_dense))}
    for name, v in tps.items():
        print(f"{name:>9}: {v:>12,.0f} tokens/s ({a.batch / v * 1000:.1f} ms per batch)")
    frac, speedup = tps["ours"] / tps["roofline"], tps["ours"] / tps["dense"]
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": device_name(device), "tokens_per_s": tps, "roofline_fraction": frac,
                       "dense_speedup": speedup}, f, indent=2)
    print(f"ratio: ours / encoder roofline {frac:.2f} (target >= 0.50); ours / dense {speedup:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
