"""Chat completions for the explainer and the scorers: a local ``transformers`` model or any
OpenAI-compatible endpoint (vLLM, llama.cpp's server, ollama, a hosted API).

Both implement ``ChatClient``: ``complete(messages, max_tokens=...) -> str`` raising the typed errors of
``errors.py``. Settings names for the endpoint (read by the caller): ``IWB_EXPLAINER_URL``,
``IWB_EXPLAINER_MODEL``, ``IWB_EXPLAINER_API_KEY``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
import torch

from ...model.loader import LoadedModel
from .errors import (
    ChatError,
    ChatProtocolError,
    ChatRateLimited,
    ChatRefused,
    ChatServerError,
    ChatTimeout,
    ChatUnauthorized,
    ChatUnavailable,
    PromptTooLong,
)
from .prompts import Message


@runtime_checkable
class ChatClient(Protocol):
    @property
    def name(self) -> str:
        """Recorded beside every explanation/score, e.g. ``local:HuggingFaceTB/SmolLM2-135M-Instruct``."""
        ...

    @property
    def supports_prefill(self) -> bool:
        """Whether a trailing assistant message is continued (the reply then holds only the continuation).
        Small local models follow the reply format far better when its start is written for them."""
        ...

    def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """The assistant's reply to ``messages`` (at most ``max_tokens`` new tokens)."""
        ...


def supports_prefill(client: object) -> bool:
    return bool(getattr(client, "supports_prefill", False))


# local ------------------------------------------------------------------------------------------------------

class LocalChat:
    """Chat with a loaded ``transformers`` causal LM, in-process.

    The tokenizer's chat template is used when it has one, else a plain ``System:/User:/Assistant:``
    prompt; a trailing assistant message is continued (prefill). Decoding is greedy (``temperature=0``)
    or sampled with a fixed seed, so replies are reproducible. Generation stops at the model's
    end-of-turn tokens (its generation config's ``eos_token_id``, else the tokenizer's) and runs under
    ``lock`` (the model lock shared with hooks and analyses).
    """

    def __init__(self, lm: LoadedModel, *, lock: Any = None, temperature: float = 0.0, seed: int = 0,
                 max_context: int | None = None) -> None:
        """``max_context``: prompt + new tokens limit (default: the model config's
        ``max_position_embeddings`` / ``n_positions``; None there means no limit)."""
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        self.lm = lm
        self.lock = lock if lock is not None else nullcontext()
        self.temperature = temperature
        self.seed = seed
        cfg = getattr(lm.model, "config", None)
        self.max_context = max_context if max_context is not None else (
            getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None))

    @property
    def name(self) -> str:
        return f"local:{self.lm.model_id}"

    @property
    def supports_prefill(self) -> bool:
        return True

    @property
    def uses_chat_template(self) -> bool:
        return bool(getattr(self.lm.tokenizer, "chat_template", None))

    def prompt_text(self, messages: Sequence[Message]) -> str:
        if not messages:
            raise ValueError("a chat needs at least one message")
        tok = self.lm.tokenizer
        prefill = messages[-1].role == "assistant"
        if self.uses_chat_template:
            return tok.apply_chat_template([m.to_dict() for m in messages], tokenize=False,  # type: ignore[attr-defined]
                                           add_generation_prompt=not prefill, continue_final_message=prefill)
        parts = [f"{m.role.capitalize()}: {m.content}" for m in messages]
        return "\n\n".join(parts) if prefill else "\n\n".join(parts) + "\n\nAssistant:"

    def prompt_ids(self, messages: Sequence[Message]) -> torch.Tensor:
        """``[1 prompt]`` token ids (the chat template carries its own special tokens; a plain prompt gets
        the BOS token when the tokenizer has one)."""
        tok = self.lm.tokenizer
        ids: list[int] = tok(self.prompt_text(messages), add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        bos = getattr(tok, "bos_token_id", None)
        if not self.uses_chat_template and bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
        return torch.tensor([ids], dtype=torch.long)

    @torch.no_grad()
    def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        from transformers import GenerationConfig

        ids = self.prompt_ids(messages)
        n = ids.shape[1]
        if self.max_context is not None and n + max_tokens > self.max_context:
            raise PromptTooLong(f"the prompt is {n} tokens; with {max_tokens} new tokens it exceeds the "
                                f"model's context of {self.max_context}; show fewer or shorter examples, or "
                                f"use a model with a longer context")
        tok, model = self.lm.tokenizer, self.lm.model
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)  # int or list (end of turn)
        if eos is None:
            eos = getattr(tok, "eos_token_id", None)
        pad = getattr(tok, "pad_token_id", None)
        if pad is None:
            pad = eos[0] if isinstance(eos, list) and eos else eos
        sample = self.temperature > 0
        gen = GenerationConfig(max_new_tokens=max_tokens, do_sample=sample,
                               temperature=self.temperature if sample else None, top_p=None, top_k=None,
                               eos_token_id=eos, pad_token_id=pad)
        dev = self.lm.device
        cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        with self.lock, torch.random.fork_rng(devices=cuda):  # seeded sampling leaves the global RNGs alone
            torch.manual_seed(self.seed)
            out = model.generate(input_ids=ids.to(self.lm.device),  # type: ignore[operator]
                                 attention_mask=torch.ones_like(ids).to(self.lm.device), generation_config=gen)
        return tok.decode(out[0, n:].tolist(), skip_special_tokens=True)  # type: ignore[attr-defined]


# OpenAI-compatible endpoint -----------------------------------------------------------------------------------

def chat_completions_url(url: str) -> str:
    """``http://host:port``, ``.../v1`` or a full ``.../chat/completions`` URL -> the completions URL."""
    u = url.strip().rstrip("/")
    parts = urlsplit(u)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"explainer URL {url!r} must be http(s)://host[:port][/v1]; set IWB_EXPLAINER_URL")
    if u.endswith("/chat/completions"):
        return u
    if u.endswith("/v1"):
        return u + "/chat/completions"
    return u + "/v1/chat/completions"


class OpenAIChat:
    """Chat through an OpenAI-compatible ``POST {url}/v1/chat/completions`` endpoint (``httpx``).

    429 and 5xx answers, timeouts and connection failures are retried ``max_retries`` times with
    exponential backoff (``Retry-After`` honoured up to ``max_backoff_s``); other 4xx are not retried.
    """

    def __init__(self, url: str, model: str, api_key: str | None = None, *, timeout_s: float = 60.0,
                 max_retries: int = 2, backoff_s: float = 1.0, max_backoff_s: float = 30.0,
                 temperature: float = 0.0, seed: int | None = 0, prefill: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """``prefill``: the server continues a trailing assistant message (llama.cpp's server does; vLLM
        needs ``continue_final_message``; hosted APIs mostly do not). ``sleep`` waits between retries."""
        if not model:
            raise ValueError("an endpoint model name is required; set IWB_EXPLAINER_MODEL")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be > 0, max_retries and backoff_s >= 0")
        self.url = chat_completions_url(url)
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.temperature = temperature
        self.seed = seed
        self.prefill = prefill
        self._sleep = sleep
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers)

    @property
    def name(self) -> str:
        return f"openai:{self.model}@{urlsplit(self.url).netloc}"

    @property
    def supports_prefill(self) -> bool:
        return self.prefill

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        body: dict[str, Any] = {"model": self.model, "messages": [m.to_dict() for m in messages],
                                "max_tokens": max_tokens, "temperature": self.temperature}
        if self.seed is not None:
            body["seed"] = self.seed
        last: ChatError | None = None
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self._delay(attempt, retry_after))
            retry_after = None
            try:
                resp = self._http.post(self.url, json=body)
            except httpx.TimeoutException:
                last = ChatTimeout(f"{self.url} did not answer within {self.timeout_s:g} s "
                                   f"({attempt + 1} attempt(s)); raise the timeout or check the server's load")
                continue
            except httpx.TransportError as e:
                last = ChatUnavailable(f"cannot reach {self.url}: {e}; is the server running? "
                                       f"check IWB_EXPLAINER_URL")
                continue
            if resp.status_code == 429:
                last = ChatRateLimited(f"{self.url} rate-limited every attempt (HTTP 429, {attempt + 1} "
                                       f"attempt(s)): {_upstream_detail(resp)}", 429)
                retry_after = _retry_after(resp)
                continue
            if resp.status_code >= 500:
                last = ChatServerError(f"{self.url} failed with HTTP {resp.status_code} ({attempt + 1} "
                                       f"attempt(s)): {_upstream_detail(resp)}", resp.status_code)
                continue
            if resp.status_code in (401, 403):
                raise ChatUnauthorized(f"{self.url} rejected the credentials (HTTP {resp.status_code}): "
                                       f"{_upstream_detail(resp)}; set IWB_EXPLAINER_API_KEY", resp.status_code)
            if resp.status_code >= 400:
                hint = "; check IWB_EXPLAINER_MODEL and the URL" if resp.status_code == 404 else ""
                raise ChatRefused(f"{self.url} refused the request (HTTP {resp.status_code}): "
                                  f"{_upstream_detail(resp)}{hint}", resp.status_code)
            return _reply_text(resp, self.url)
        assert last is not None
        raise last

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Backoff before retry ``attempt`` (1-based): doubling from ``backoff_s``, at least the server's
        ``Retry-After``, at most ``max_backoff_s``."""
        delay = self.backoff_s * 2 ** (attempt - 1)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff_s)


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("retry-after", "")))
    except ValueError:
        return None


def _upstream_detail(resp: httpx.Response, n: int = 200) -> str:
    """The endpoint's own error message (``{"error": {"message": ...}}`` or ``{"detail": ...}``), else text."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    msg: Any = None
    if isinstance(data, dict):
        err = data.get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        msg = msg or data.get("detail") or data.get("message")
    text = str(msg) if msg else resp.text.strip() or resp.reason_phrase
    return text if len(text) <= n else text[: n - 1] + "…"


def _reply_text(resp: httpx.Response, url: str) -> str:
    try:
        data = resp.json()
    except (ValueError, json.JSONDecodeError):
        raise ChatProtocolError(f"{url} answered HTTP {resp.status_code} with a body that is not JSON: "
                                f"{resp.text[:120]!r}; is the URL an OpenAI-compatible server?") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ChatProtocolError(f"{url} answered without 'choices': {str(data)[:120]!r}")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ChatProtocolError(f"{url} answered a choice without 'message': {str(choice)[:120]!r}")
    if message.get("refusal"):
        raise ChatRefused(f"the model refused: {str(message['refusal'])[:200]}")
    if choice.get("finish_reason") == "content_filter":
        raise ChatRefused("the endpoint's content filter stopped the reply")
    content = message.get("content")
    if not isinstance(content, str):
        raise ChatProtocolError(f"{url} answered a message without text content: {str(message)[:120]!r}")
    return content
