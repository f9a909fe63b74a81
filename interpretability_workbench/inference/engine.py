"""Next-token distributions of the live model: original (every patch off) vs patched, KL, the tokens
that moved most, and generation.

Three paths compute a comparison:

* one-shot (``InferenceEngine.compare``, ``POST /api/inference``): requests go through a ``Batcher``
  (``inference/batching.py``): concurrent requests run as one right-padded forward per patch set;
* many at once (``compare_many``): the same batched computation, called directly;
* live (``LiveSession``, ``inference/live.py``): one prompt, many patched results; the original run is kept
  (logits, keys and values, ``resid_pre`` at the patched block), so a strength change reruns only the blocks
  at and above the lowest patched one, only the positions from the first one the patches change, and
  projects only the last position to logits.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import Invalid, WorkbenchError
from ..model.handle import ModelHandle
from ..model.loader import LoadedModel
from ..model.tokenize import encode_prompt
from ..patches.manager import PatchManager
from .batching import Batcher, BatchStats, CompareRequest, logits_many
from .live import LiveLogits, LiveSession
from .results import Comparison, TokenMove, TokenProb, comparisons, kl_divergence, moved_tokens, top_tokens


@torch.no_grad()
def next_token_logits(lm: LoadedModel, input_ids: Tensor) -> Tensor:
    """Plain forward; logits of the last position ``[d_vocab]`` (float32)."""
    return lm.model(input_ids=input_ids, use_cache=False).logits[0, -1].float()


def next_token(lm: LoadedModel, text: str, top_k: int = 10, max_tokens: int | None = None) -> list[TokenProb]:
    return top_tokens(lm, next_token_logits(lm, encode_prompt(lm, text, max_tokens)), top_k)


def _held_here(lock: object) -> bool:
    """Whether the current thread holds ``lock`` (an RLock): a call from inside a model-lock scope must not
    wait on the batch worker, which needs the lock too."""
    owned = getattr(lock, "_is_owned", None)
    return bool(owned()) if owned is not None else False


class InferenceEngine:
    """Original vs patched next-token distributions, generation and patch effect checks on the loaded model."""

    def __init__(self, model: ModelHandle, patches: PatchManager, max_prompt_tokens: int, max_batch: int = 8,
                 batch_window_ms: float = 2.0) -> None:
        self.model, self.patches, self.max_prompt_tokens = model, patches, max_prompt_tokens
        self.max_batch = max(1, int(max_batch))
        self.batcher = Batcher(self.compare_many, self.max_batch, batch_window_ms / 1000)

    def session(self) -> LiveSession:
        return LiveSession(self.model, self.patches, self.max_prompt_tokens)

    def compare(self, text: str, top_k: int = 10, patch_ids: list[str] | None = None) -> Comparison:
        """Original vs patched next-token distributions (``patch_ids`` None: the enabled patches), batched
        with whatever other comparisons are waiting."""
        req = CompareRequest(text, top_k, patch_ids)
        if _held_here(self.model.lock):
            res = self.compare_many([req])[0]
        else:
            res = self.batcher.submit(req).result()
        if isinstance(res, BaseException):
            raise res
        return res

    def compare_many(self, requests: list[CompareRequest]) -> list[Comparison | WorkbenchError]:
        """Many comparisons in one padded forward per patch set; an item whose input is invalid gets its
        error in its place, the others are answered."""
        t0 = time.perf_counter()
        res = logits_many(self.model, self.patches, self.max_prompt_tokens, [(r.text, r.patch_ids) for r in requests])
        lm = self.model.require()
        done = [(q, r) for q, r in zip(requests, res) if not isinstance(r, WorkbenchError)]
        if not done:
            return list(res)  # type: ignore[arg-type]
        ms = (time.perf_counter() - t0) * 1000
        made = iter(comparisons(lm, torch.stack([r.original for _, r in done]), torch.stack([r.patched for _, r in done]),
                                [q.top_k for q, _ in done], [r.patch_ids for _, r in done],
                                [r.n_tokens for _, r in done], [r.from_layer for _, r in done], ms))
        return [r if isinstance(r, WorkbenchError) else next(made) for r in res]

    def batch_stats(self) -> BatchStats:
        return self.batcher.stats()

    def generate(self, text: str, max_new_tokens: int = 32, temperature: float = 0.0, seed: int | None = None,
                 patch_ids: list[str] | None = None) -> Generation:
        return generate(self, text, max_new_tokens, temperature, seed, patch_ids)

    def evaluate(self, patch_id: str, texts: list[str], targets: list[str | int]) -> Evaluation:
        return evaluate(self, patch_id, texts, targets)

    def shutdown(self) -> None:
        """Stop the batch worker once what is queued is answered."""
        self.batcher.close()


# generation ------------------------------------------------------------------------------------
class Generation(NamedTuple):
    original: str
    patched: str
    original_ids: list[int]
    patched_ids: list[int]
    patch_ids: list[str]


@torch.no_grad()
def _sample_loop(lm: LoadedModel, ids: Tensor, max_new_tokens: int, temperature: float, seed: int | None) -> list[int]:
    gen = torch.Generator(device=ids.device)
    gen.manual_seed(0 if seed is None else int(seed))
    eos = getattr(lm.tokenizer, "eos_token_id", None)
    out = lm.model(input_ids=ids, use_cache=True, logits_to_keep=1)
    new: list[int] = []
    for step in range(max_new_tokens):
        logits = out.logits[0, -1].float()  # [d_vocab]
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            probs = (logits / temperature).softmax(-1)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        new.append(nxt)
        if nxt == eos or step == max_new_tokens - 1:
            break
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        out = lm.model(input_ids=torch.tensor([[nxt]], device=ids.device), cache=cache, use_cache=True,
                       logits_to_keep=1)
    return new


def generate(engine: InferenceEngine, text: str, max_new_tokens: int = 32, temperature: float = 0.0, seed: int | None = None,
             patch_ids: list[str] | None = None) -> Generation:
    """Original vs patched continuations: greedy at temperature 0, else seeded sampling (same seed for both)."""
    if not 1 <= max_new_tokens <= 128:
        raise Invalid("max_new_tokens must be in 1..128")
    with engine.model.lock:
        lm = engine.model.require()
        ids = encode_prompt(lm, text, engine.max_prompt_tokens)
        pids = engine.patches.resolve_ids(patch_ids)
        with engine.patches.original:
            orig = _sample_loop(lm, ids, max_new_tokens, temperature, seed)
        if pids:
            with engine.patches.using(pids):
                patched = _sample_loop(lm, ids, max_new_tokens, temperature, seed)
        else:
            patched = list(orig)
    dec = lm.tokenizer.decode
    return Generation(dec(orig), dec(patched), orig, patched, pids)


# effect check ----------------------------------------------------------------------------------
class TargetTokens(NamedTuple):
    ids: list[int]
    notes: list[str]


def resolve_targets(lm: LoadedModel, targets: list[str | int]) -> TargetTokens:
    """Target tokens as ids: ints are ids; a string is its first token (without special tokens)."""
    ids: list[int] = []
    notes: list[str] = []
    for t in targets:
        if isinstance(t, int):
            if not 0 <= t < lm.vocab_size:
                raise Invalid(f"target token id {t} is out of range 0..{lm.vocab_size - 1}")
            ids.append(t)
            continue
        toks = lm.tokenizer(t, add_special_tokens=False)["input_ids"]
        if not toks:
            raise Invalid(f"target {t!r} produced no tokens")
        ids.append(int(toks[0]))
        if len(toks) > 1:
            notes.append(f"{t!r} is {len(toks)} tokens; its first token {lm.tokenizer.decode([toks[0]])!r} is used")
    if not ids:
        raise Invalid("give at least one target token")
    return TargetTokens(list(dict.fromkeys(ids)), notes)


class TextEffect(NamedTuple):
    text: str
    before: float
    after: float


class Evaluation(NamedTuple):
    results: list[TextEffect]
    mean_before: float
    mean_after: float
    target_ids: list[int]
    notes: list[str]


def evaluate(engine: InferenceEngine, patch_id: str, texts: list[str], targets: list[str | int]) -> Evaluation:
    """Probability of the target tokens (summed) as the next token, before (all patches off) and after
    (only this patch on), per text and on average."""
    if not texts:
        raise Invalid("give at least one text")
    engine.patches.get(patch_id)  # 404 for an unknown patch
    lm = engine.model.require()
    tt = resolve_targets(lm, targets)
    sel = torch.tensor(tt.ids)
    results = []
    for i in range(0, len(texts), engine.max_batch):
        chunk = texts[i:i + engine.max_batch]
        for text, r in zip(chunk, logits_many(engine.model, engine.patches, engine.max_prompt_tokens,
                                               [(t, [patch_id]) for t in chunk])):
            if isinstance(r, BaseException):
                raise r
            before = float(r.original.softmax(-1)[sel.to(r.original.device)].sum())
            after = float(r.patched.softmax(-1)[sel.to(r.patched.device)].sum())
            results.append(TextEffect(text, before, after))
    n = len(results)
    return Evaluation(results, sum(r.before for r in results) / n, sum(r.after for r in results) / n, tt.ids, tt.notes)


__all__ = ["CompareRequest", "Comparison", "InferenceEngine", "LiveLogits", "LiveSession", "TokenMove",
           "TokenProb", "evaluate", "generate", "kl_divergence", "moved_tokens", "next_token", "next_token_logits",
           "top_tokens"]
