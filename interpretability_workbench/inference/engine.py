"""Next-token distributions of the live model (original; patched variants come with patches)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..errors import Invalid
from ..model.loader import LoadedModel


@dataclass
class TokenProb:
    token: str
    id: int
    prob: float
    logit: float

    def to_dict(self) -> dict:
        return asdict(self)


def encode_prompt(lm: LoadedModel, text: str, max_tokens: int | None = None) -> Tensor:
    """Text -> ``[1 pos]`` input ids on the model's device; 422 for empty or over-long text."""
    if not text or not text.strip():
        raise Invalid("text is empty; give a prompt of at least one token")
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:
        raise Invalid("text produced no tokens")
    if max_tokens is not None and ids.shape[1] > max_tokens:
        raise Invalid(f"text is {ids.shape[1]} tokens long; the limit is {max_tokens} (IWB_MAX_PROMPT_TOKENS)")
    return ids.to(lm.device)


def top_tokens(lm: LoadedModel, logits: Tensor, k: int) -> list[TokenProb]:
    """``logits [d_vocab]`` -> the k most probable tokens."""
    logits = logits.float()
    probs = logits.softmax(-1)
    top = probs.topk(min(k, probs.shape[-1]))
    return [TokenProb(lm.tokenizer.decode([int(i)]), int(i), float(p), float(logits[i]))
            for p, i in zip(top.values, top.indices)]


@torch.no_grad()
def next_token_logits(lm: LoadedModel, input_ids: Tensor) -> Tensor:
    """Plain forward; logits of the last position ``[d_vocab]`` (float32)."""
    return lm.model(input_ids=input_ids, use_cache=False).logits[0, -1].float()


def next_token(lm: LoadedModel, text: str, top_k: int = 10, max_tokens: int | None = None) -> list[TokenProb]:
    return top_tokens(lm, next_token_logits(lm, encode_prompt(lm, text, max_tokens)), top_k)
