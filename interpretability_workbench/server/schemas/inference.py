"""Wire schemas of /api/inference and /api/generate (and the WS `logits` message)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TokenProb(BaseModel):
    token: str = Field(description="Decoded token.")
    id: int = Field(description="Token id.")
    prob: float = Field(description="Probability as the next token.")
    logit: float = Field(description="Logit.")


class TokenMove(BaseModel):
    token: str = Field(description="Decoded token.")
    id: int = Field(description="Token id.")
    original_probability: float = Field(description="Probability with every patch off.")
    patched_probability: float = Field(description="Probability with the selected patches on.")
    delta: float = Field(description="patched − original.")


class InferenceRequest(BaseModel):
    text: str = Field(max_length=200_000, description="Prompt (non-empty, at most IWB_MAX_PROMPT_TOKENS tokens).")
    top_k: int = Field(10, ge=1, le=100, description="How many tokens to list.")
    patch_ids: list[str] | None = Field(None, description="Patches to apply; null = the enabled patches.")


class InferenceResponse(BaseModel):
    original: list[TokenProb] = Field(description="Top-k next tokens of the original model (every patch off).")
    patched: list[TokenProb] = Field(description="Top-k next tokens with the selected patches on.")
    moved: list[TokenMove] = Field(description="Tokens whose probability moved most (by |Δp|).")
    kl: float = Field(description="KL(original ‖ patched) in nats.")
    patch_ids: list[str] = Field(description="Patches applied for `patched`.")
    n_tokens: int = Field(description="Prompt length in tokens.")
    from_layer: int | None = Field(None, description="Lowest block rerun for the patched result.")
    compute_ms: float = Field(description="Server compute time of this comparison.")

    @classmethod
    def from_comparison(cls, c: Any) -> "InferenceResponse":
        """The one serialiser of an ``inference.engine.Comparison`` (REST and the WS ``logits`` message)."""
        return cls(original=[TokenProb(**t.to_dict()) for t in c.original],
                   patched=[TokenProb(**t.to_dict()) for t in c.patched],
                   moved=[TokenMove(**m.to_dict()) for m in c.moved], kl=c.kl, patch_ids=c.patch_ids,
                   n_tokens=c.n_tokens, from_layer=c.from_layer, compute_ms=c.compute_ms)


class GenerateRequest(BaseModel):
    text: str = Field(max_length=200_000, description="Prompt.")
    max_new_tokens: int = Field(32, ge=1, le=128, description="Tokens to generate (1..128).")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0 = greedy; > 0 samples with `seed`.")
    seed: int | None = Field(None, description="Sampling seed (the same for both continuations; default 0).")
    patch_ids: list[str] | None = Field(None, description="Patches to apply; null = the enabled patches.")


class GenerateResponse(BaseModel):
    original: str = Field(description="Continuation of the original model.")
    patched: str = Field(description="Continuation with the patches on.")
    original_ids: list[int] = Field(description="Token ids of the original continuation.")
    patched_ids: list[int] = Field(description="Token ids of the patched continuation.")
    patch_ids: list[str] = Field(description="Patches applied.")
