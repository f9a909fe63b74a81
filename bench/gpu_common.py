"""Shared by the GPU benches and ``tests/gpu``: random Llama models of real shapes built in-process (weights
initialised directly on the target device, in the target dtype — nothing is downloaded), a byte-level BPE
tokenizer trained on the built-in corpus, and timing helpers that synchronise the device.

Shapes: ``llama-3.2-1b`` and ``llama-3.1-8b`` (the published configs' sizes), and ``tiny`` for CPU smoke runs.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from interpretability_workbench.model.hook_map import arch_for  # noqa: E402
from interpretability_workbench.model.loader import LoadedModel, pick_device  # noqa: E402

SHAPES: dict[str, dict] = {
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
                         rope_theta=500000.0, max_position_embeddings=8192, rms_norm_eps=1e-5),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False,
                         rope_theta=500000.0, max_position_embeddings=8192, rms_norm_eps=1e-5),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=512, tie_word_embeddings=False,
                 max_position_embeddings=1024),
}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=1)
def tokenizer_dir() -> Path:
    """A 512-token byte-level BPE tokenizer trained on the built-in corpus (BOS = EOS = <|endoftext|>)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from interpretability_workbench.activations.corpus import load_texts

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(load_texts(None)[:400], vocab_size=512, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    d = Path(tempfile.mkdtemp(prefix="iwb-tok-"))
    tok.save_pretrained(d)
    return d


def random_llama(shape: str, device: str | torch.device | None = None, dtype: torch.dtype = torch.bfloat16,
                 *, seed: int = 0, n_layers: int | None = None) -> LoadedModel:
    """A randomly initialised Llama of ``shape``, built on ``device`` in ``dtype`` (no float32 copy on the way),
    wrapped as the workbench's ``LoadedModel`` (adopt it with ``ModelHandle.adopt``)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    device = pick_device(str(device or default_device()))  # 'cuda' -> 'cuda:0', as the loader does
    kw = dict(SHAPES[shape])
    if n_layers is not None:
        kw["num_hidden_layers"] = n_layers
    cfg = LlamaConfig(bos_token_id=0, eos_token_id=0, pad_token_id=0, **kw)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.device(device):
        model = LlamaForCausalLM._from_config(cfg, dtype=dtype)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    sync(device)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir())
    return LoadedModel(name=f"random-{shape}", model_id=f"random/{shape}", revision=f"seed-{seed}", model=model,
                       tokenizer=tok, family=arch_for(model).family, architecture=type(model).__name__,
                       n_layers=cfg.num_hidden_layers, d_model=cfg.hidden_size, vocab_size=cfg.vocab_size,
                       device=device, dtype=dtype, load_seconds=time.perf_counter() - t0)


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device | str, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls (after ``warmup``), the device synchronised around each."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def device_name(device: torch.device | str) -> str:
    d = torch.device(device)
    if d.type == "cuda":
        return torch.cuda.get_device_name(d.index or 0)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def workbench_state(lm: LoadedModel):
    """A WorkbenchState over a temporary workspace with ``lm`` adopted as the loaded model."""
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(Settings(home=Path(tempfile.mkdtemp(prefix="iwb-gpu-bench-")), model="none",
                                 device=str(lm.device), dtype=str(lm.dtype).removeprefix("torch.")))
    st.model.adopt(lm)
    return st


def random_sae(lm: LoadedModel, layer: int, d_sae: int, *, k: int = 64, seed: int = 0, kind: str = "resid_post"):
    """A TopK SAE with random unit decoder rows (encoder = decoder transpose), float32 on the model's device."""
    from interpretability_workbench.sae.config import SAEConfig
    from interpretability_workbench.sae.model import SparseAutoencoder

    with torch.device(lm.device):
        sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=d_sae, architecture="topk", k=k,
                                          hook_name=f"blocks.{layer}.hook_{kind}", model_id=lm.model_id))
    g = torch.Generator(device=lm.device).manual_seed(seed)
    with torch.no_grad():
        w = torch.randn(d_sae, lm.d_model, generator=g, device=lm.device)
        w /= w.norm(dim=1, keepdim=True)
        sae.W_dec.copy_(w)
        sae.W_enc.copy_(w.T)
    return sae.eval().requires_grad_(False)


def prompt_ids(lm: LoadedModel, n: int) -> torch.Tensor:
    """``[1 n]`` ids of built-in corpus text (BOS first), on the model's device."""
    from interpretability_workbench.activations.corpus import load_texts
    from interpretability_workbench.model.tokenize import token_ids

    ids = token_ids(lm.tokenizer, " ".join(load_texts(None)[:200]))[:n]
    assert len(ids) == n, f"the corpus gave only {len(ids)} tokens"
    return torch.tensor([ids], device=lm.device)


def prompt_text(lm: LoadedModel, n: int) -> str:
    """Text that the workbench's tokenisation rule turns into exactly ``n`` tokens (BOS counted)."""
    from interpretability_workbench.model.tokenize import token_ids

    ids = prompt_ids(lm, n + 8)[0].tolist()[1:]
    for cut in range(n + 7, 0, -1):
        text = lm.tokenizer.decode(ids[:cut])
        if len(token_ids(lm.tokenizer, text)) <= n:
            return text
    raise AssertionError("no prompt")
