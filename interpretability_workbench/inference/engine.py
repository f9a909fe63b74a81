"""Next-token distributions of the live model: original (every patch off) vs patched, KL, the tokens
that moved most, and generation.

The live path (``LiveSession``) keeps the original result and the prompt's ``resid_pre`` at the lowest
patched block, so a strength change only reruns the blocks at and above it and projects only the last
position to logits.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import Invalid
from ..model.handle import ModelHandle
from ..model.hook_names import hook_name
from ..model.hooks import forward_last_logits
from ..model.loader import LoadedModel
from ..model.token_text import token_text
from ..model.tokenize import encode_prompt
from ..patches.manager import PatchManager


@dataclass
class TokenProb:
    token: str
    id: int
    prob: float
    logit: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TokenMove:
    token: str
    id: int
    original_probability: float
    patched_probability: float
    delta: float
    """patched − original probability."""

    def to_dict(self) -> dict:
        return asdict(self)


def top_tokens(lm: LoadedModel, logits: Tensor, k: int) -> list[TokenProb]:
    """``logits [d_vocab]`` -> the k most probable tokens."""
    logits = logits.float()
    probs = logits.softmax(-1)
    top = probs.topk(min(k, probs.shape[-1]))
    return [TokenProb(token_text(lm.tokenizer, int(i)), int(i), float(p), float(logits[i]))
            for p, i in zip(top.values, top.indices)]


@torch.no_grad()
def next_token_logits(lm: LoadedModel, input_ids: Tensor) -> Tensor:
    """Plain forward; logits of the last position ``[d_vocab]`` (float32)."""
    return lm.model(input_ids=input_ids, use_cache=False).logits[0, -1].float()


def next_token(lm: LoadedModel, text: str, top_k: int = 10, max_tokens: int | None = None) -> list[TokenProb]:
    return top_tokens(lm, next_token_logits(lm, encode_prompt(lm, text, max_tokens)), top_k)


# original vs patched ---------------------------------------------------------------------------
class Comparison(NamedTuple):
    original: list[TokenProb]
    patched: list[TokenProb]
    moved: list[TokenMove]
    """Tokens whose probability changed most (by |Δp|)."""
    kl: float
    """KL(original ‖ patched) in nats."""
    patch_ids: list[str]
    n_tokens: int
    from_layer: int | None
    """Lowest block rerun for the patched result (None: no patches, patched = original)."""
    compute_ms: float
    """Server compute time of this comparison."""


def kl_divergence(p_logits: Tensor, q_logits: Tensor) -> float:
    """KL(p ‖ q) for logits ``[d_vocab]``, in nats."""
    lp, lq = p_logits.float().log_softmax(-1), q_logits.float().log_softmax(-1)
    return max(0.0, float((lp.exp() * (lp - lq)).sum()))


def moved_tokens(lm: LoadedModel, orig: Tensor, patched: Tensor, k: int) -> list[TokenMove]:
    po, pp = orig.float().softmax(-1), patched.float().softmax(-1)
    delta = pp - po
    idx = delta.abs().topk(min(k, delta.shape[-1])).indices
    return [TokenMove(token_text(lm.tokenizer, int(i)), int(i), float(po[i]), float(pp[i]), float(delta[i]))
            for i in idx if float(delta[i]) != 0.0]


class InferenceEngine:
    """Original vs patched next-token distributions, generation and patch effect checks on the loaded model."""

    def __init__(self, model: ModelHandle, patches: PatchManager, max_prompt_tokens: int) -> None:
        self.model, self.patches, self.max_prompt_tokens = model, patches, max_prompt_tokens

    def session(self) -> "LiveSession":
        return LiveSession(self)

    def compare(self, text: str, top_k: int = 10, patch_ids: list[str] | None = None) -> "Comparison":
        """Original vs patched next-token distributions (``patch_ids`` None: the enabled patches)."""
        return LiveSession(self).compare(text, top_k, patch_ids)

    def generate(self, text: str, max_new_tokens: int = 32, temperature: float = 0.0, seed: int | None = None,
                 patch_ids: list[str] | None = None) -> "Generation":
        return generate(self, text, max_new_tokens, temperature, seed, patch_ids)

    def evaluate(self, patch_id: str, texts: list[str], targets: list[str | int]) -> "Evaluation":
        return evaluate(self, patch_id, texts, targets)


@dataclass
class LiveSession:
    """Caches for one client (a socket or one request): the prompt's ids, the original logits and the
    original ``resid_pre`` at each block a patched forward started from. Valid for one model and prompt."""

    engine: InferenceEngine
    _key: tuple[int, str] | None = None
    _ids: Tensor | None = None
    _orig: Tensor | None = None
    _resid: dict[int, Tensor] = field(default_factory=dict)

    def _prepare(self, lm: LoadedModel, text: str) -> Tensor:
        key = (id(lm.model), text)
        if key != self._key:
            self._ids = encode_prompt(lm, text, self.engine.max_prompt_tokens)
            self._key, self._orig, self._resid = key, None, {}
        assert self._ids is not None
        return self._ids

    def _original(self, lm: LoadedModel, ids: Tensor, layer: int | None) -> None:
        need_resid = layer is not None and layer > 0 and layer not in self._resid
        if self._orig is not None and not need_resid:
            return
        grabbed: dict[str, Tensor] = {}
        hooks = {}
        if need_resid:
            def grab(act: Tensor) -> None:
                grabbed["r"] = act.detach().clone()
            hooks[hook_name(layer, "resid_pre")] = grab
        with self.engine.patches.original:
            logits = forward_last_logits(lm.model, ids, fwd_hooks=hooks)[0].float()  # [d_vocab]
        self._orig = logits
        if need_resid:
            self._resid[layer] = grabbed["r"]  # type: ignore[index]

    def logits(self, text: str, patch_ids: list[str] | None) -> tuple[Tensor, Tensor, list[str], int | None]:
        """(original [d_vocab], patched [d_vocab], patch ids used, from_layer) under the model lock."""
        engine = self.engine
        with engine.model.lock:
            lm = engine.model.require()
            ids = self._prepare(lm, text)
            pids = engine.patches.resolve_ids(patch_ids)
            layer = engine.patches.lowest_layer(pids)
            self._original(lm, ids, layer)
            assert self._orig is not None
            if layer is None:
                return self._orig, self._orig, pids, None
            with engine.patches.using(pids), torch.no_grad():
                if layer > 0:
                    patched = forward_last_logits(lm.model, ids, from_layer=layer, resid_pre=self._resid[layer])
                else:
                    patched = forward_last_logits(lm.model, ids)
            return self._orig, patched[0].float(), pids, layer

    def compare(self, text: str, top_k: int = 10, patch_ids: list[str] | None = None) -> Comparison:
        t0 = time.perf_counter()
        orig, patched, pids, layer = self.logits(text, patch_ids)
        lm = self.engine.model.require()
        assert self._ids is not None
        return Comparison(top_tokens(lm, orig, top_k), top_tokens(lm, patched, top_k),
                          moved_tokens(lm, orig, patched, top_k), kl_divergence(orig, patched), pids,
                          int(self._ids.shape[1]), layer, (time.perf_counter() - t0) * 1000)


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
    for text in texts:
        orig, patched, _, _ = LiveSession(engine).logits(text, [patch_id])
        before = float(orig.softmax(-1)[sel.to(orig.device)].sum())
        after = float(patched.softmax(-1)[sel.to(patched.device)].sum())
        results.append(TextEffect(text, before, after))
    n = len(results)
    return Evaluation(results, sum(r.before for r in results) / n, sum(r.after for r in results) / n, tt.ids, tt.notes)
