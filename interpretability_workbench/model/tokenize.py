"""How text becomes model input — the one place that decides it."""
from __future__ import annotations

from torch import Tensor

from ..errors import Invalid
from .loader import LoadedModel


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
