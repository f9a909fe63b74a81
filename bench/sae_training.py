"""SAE training speed: ours (sparse TopK kernels, through Lightning) vs SAELens's TopK training SAE (dense)
vs a naive dense torch loop, on the same recorded activations of the default model (layer 6 resid_post),
same d_sae / k / token budget / batch size / learning rate. Prints tokens/s and held-out FVU for each and,
last, our tokens/s divided by SAELens's (target >= 3).

    IWB_HOME=workspace .venv/bin/python bench/sae_training.py [--tokens 131072 --batch-size 2048]

Activations are recorded once into $IWB_HOME/bench/l6_resid_post (a Parquet trace) and reused.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interpretability_workbench.activations.corpus import load_texts, make_contexts  # noqa: E402
from interpretability_workbench.activations.store import read_manifest, read_trace, write_trace  # noqa: E402
from interpretability_workbench.sae.config import SAEConfig  # noqa: E402
from interpretability_workbench.sae.model import SparseAutoencoder  # noqa: E402

HOOK = "blocks.6.hook_resid_post"


def record(home: Path, n_tokens: int) -> Path:
    out = home / "bench" / "l6_resid_post"
    try:
        if read_manifest(out).n_tokens >= n_tokens:
            return out
    except FileNotFoundError:
        pass
    from interpretability_workbench.model.loader import load_model

    lm = load_model("default", device="cpu", dtype="float32", cache_dir=home / "models")
    ctx = make_contexts(lm.tokenizer, load_texts(None), 128, max_contexts=math.ceil(n_tokens / 127))
    t = time.perf_counter()
    write_trace(lm, ctx, HOOK, out, n_tokens=n_tokens, batch_size=32)
    print(f"recorded {n_tokens} tokens of {HOOK} in {time.perf_counter() - t:.0f}s", flush=True)
    return out


def fvu(recon_fn, x: torch.Tensor) -> float:
    with torch.no_grad():
        err = sum(float((recon_fn(x[s: s + 4096]) - x[s: s + 4096]).pow(2).sum()) for s in range(0, len(x), 4096))
    return err / float((x - x.mean(0)).pow(2).sum())


def batches(x: torch.Tensor, bs: int, seed: int = 0):
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for s in range(0, len(x) - bs + 1, bs):
        yield x[perm[s: s + bs]]


def train_ours(x, held, a) -> tuple[float, float]:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, IterableDataset

    from interpretability_workbench.training.config import TrainingConfig
    from interpretability_workbench.training.lit_module import SAETrainingModule
    from interpretability_workbench.sae.sparse import geometric_median

    cfg = TrainingConfig(hook_names=[HOOK], d_sae=a.d_sae, k=a.k, lr=a.lr, total_tokens=len(x),
                         batch_size=a.batch_size, normalize=False, accelerator="cpu", dead_after_tokens=a.dead_after)
    sae = SparseAutoencoder(SAEConfig(d_in=x.shape[1], d_sae=a.d_sae, k=a.k, hook_name=HOOK))
    sae.reset_parameters(seed=0)
    with torch.no_grad():
        sae.b_dec.copy_(geometric_median(x[:4096]))

    class Stream(IterableDataset):
        def __iter__(self):
            return batches(x, a.batch_size)

    module = SAETrainingModule([sae], cfg)
    trainer = pl.Trainer(max_steps=cfg.total_steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    t = time.perf_counter()
    trainer.fit(module, train_dataloaders=DataLoader(Stream(), batch_size=None))
    dt = time.perf_counter() - t
    return cfg.total_steps * a.batch_size / dt, fvu(lambda b: sae(b).x_hat, held)


def train_saelens(x, held, a) -> tuple[float, float]:
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput

    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=x.shape[1], d_sae=a.d_sae, k=a.k))
    coefs = {k: getattr(v, "value", v) for k, v in sae.get_coefficients().items()}
    opt = torch.optim.Adam(sae.parameters(), lr=a.lr)
    since = torch.zeros(a.d_sae, dtype=torch.long)
    steps = len(x) // a.batch_size
    t = time.perf_counter()
    for i, b in enumerate(batches(x, a.batch_size)):
        out = sae.training_forward_pass(TrainStepInput(sae_in=b, coefficients=coefs, dead_neuron_mask=since >= a.dead_after,
                                                       n_training_steps=i, is_logging_step=False))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        with torch.no_grad():
            fired = (out.feature_acts > 0).any(0)
            since += b.shape[0]
            since[fired] = 0
    dt = time.perf_counter() - t
    return steps * a.batch_size / dt, fvu(lambda b: sae(b), held)


def train_naive(x, held, a) -> tuple[float, float]:
    sae = SparseAutoencoder(SAEConfig(d_in=x.shape[1], d_sae=a.d_sae, k=a.k, hook_name=HOOK))
    sae.reset_parameters(seed=0)
    opt = torch.optim.Adam(sae.parameters(), lr=a.lr)
    steps = len(x) // a.batch_size
    t = time.perf_counter()
    for b in batches(x, a.batch_size):
        loss = (sae(b).x_hat - b).pow(2).sum() / (b - b.mean(0)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sae.normalize_decoder()
    dt = time.perf_counter() - t
    return steps * a.batch_size / dt, fvu(lambda b: sae(b).x_hat, held)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=131_072, help="training tokens per trainer")
    p.add_argument("--held-out", type=int, default=16_384)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--d-sae", type=int, default=4608)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dead-after", type=int, default=50_000)
    a = p.parse_args()
    home = Path(os.environ.get("IWB_HOME", Path(__file__).resolve().parents[1] / "workspace"))
    trace = record(home, a.tokens + a.held_out)
    data = torch.cat(list(read_trace(trace)))[: a.tokens + a.held_out]
    data = data * (math.sqrt(data.shape[1]) / data.norm(dim=1).mean())  # same normalisation for everyone
    x, held = data[: a.tokens], data[a.tokens:]
    print(f"{len(x)} train / {len(held)} held-out tokens, d_in {x.shape[1]}, d_sae {a.d_sae}, k {a.k}, "
          f"batch {a.batch_size}, lr {a.lr}, torch threads {torch.get_num_threads()}", flush=True)
    res = {}
    for name, fn in (("ours (sparse topk, lightning)", train_ours), ("saelens TopKTrainingSAE (dense)", train_saelens),
                     ("naive dense torch", train_naive)):
        torch.manual_seed(0)
        res[name] = fn(x, held, a)
        print(f"{name:34s} {res[name][0]:9.0f} tokens/s   held-out FVU {res[name][1]:.4f}", flush=True)
    ours, theirs = res["ours (sparse topk, lightning)"][0], res["saelens TopKTrainingSAE (dense)"][0]
    print(f"ours tokens/s / saelens tokens/s = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
