"""How text becomes model input — the one place that decides it.

The rule (TransformerLens's ``prepend_bos``, and how every SAE here is trained): the text is tokenised
without the tokenizer's own special tokens, and its BOS token, when it has one, goes first. Position 0 —
that BOS, or the first real token when there is none — is an attention sink with outlier norms: SAE
training, metrics and every per-token SAE report leave it out (``FIRST_REPORTED``). Training contexts
(``activations/corpus.make_contexts``), analysis, per-text activations, contrast, provenance, inference and
generation all go through here, so the same text gives the same activations everywhere.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import Invalid
from .loader import LoadedModel

FIRST_REPORTED = 1
"""Position of the first token whose SAE activations are reported (position 0 is the sink)."""


def bos_id(tokenizer: object) -> int | None:
    """The BOS token id that starts every model input, or None when the tokenizer has none."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return None if bos is None else int(bos)


def token_ids(tokenizer: object, text: str) -> list[int]:
    """Text -> token ids with the BOS rule applied (no other special tokens)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[operator]
    bos = bos_id(tokenizer)
    if bos is not None and (not ids or ids[0] != bos):
        ids.insert(0, bos)
    return ids


class ModelInput(NamedTuple):
    ids: Tensor
    """``[1 pos]`` input ids on the model's device (BOS first when the tokenizer has one)."""
    first: int
    """First position SAE reports cover (``FIRST_REPORTED``)."""
    has_bos: bool

    def reported(self) -> Tensor:
        """``[pos - first]`` the token ids SAE reports cover; 422 when there are none."""
        if self.ids.shape[1] <= self.first:
            raise Invalid("the text is a single token, which sits at position 0 (the attention sink SAEs leave "
                          "out); give at least one more token")
        return self.ids[0, self.first:]


def encode_text(lm: LoadedModel, text: str, max_tokens: int | None = None) -> ModelInput:
    """Text -> model input by the rule above; 422 for empty or over-long text (BOS counted)."""
    if not text or not text.strip():
        raise Invalid("text is empty; give a prompt of at least one token")
    ids = token_ids(lm.tokenizer, text)
    has_bos = bos_id(lm.tokenizer) is not None
    if len(ids) <= (1 if has_bos else 0):
        raise Invalid("text produced no tokens")
    if max_tokens is not None and len(ids) > max_tokens:
        raise Invalid(f"text is {len(ids)} tokens long; the limit is {max_tokens} (IWB_MAX_PROMPT_TOKENS)")
    t = torch.tensor([ids], dtype=torch.long, device=lm.device)
    return ModelInput(t, FIRST_REPORTED, has_bos)


def encode_prompt(lm: LoadedModel, text: str, max_tokens: int | None = None) -> Tensor:
    """Text -> ``[1 pos]`` input ids (``encode_text(...).ids``)."""
    return encode_text(lm, text, max_tokens).ids
