"""Fixtures for the explanation tests: a tiny SAE on the tiny Llama, an analysis + context pool over a few
contexts, and a real HTTP server speaking OpenAI chat-completions (``ChatServer``).

The server answers with the tiny model through ``LocalChat`` (mode ``model``), or fails on purpose
(``timeout``, ``status``, ``malformed``, ``refusal``, ``no_choices``), or — mode ``rule``, a protocol test
of the client and the parsers — answers with a small deterministic rule written here: the explainer
names the most frequent marked token, detection says 1 for excerpts containing that word, fuzzing says 1
when every marked span is exactly that word.
"""
from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import torch

from interpretability_workbench.features.explain import LocalChat, Message

HOOK = "blocks.1.hook_resid_post"


# the deterministic rule (mode "rule") ---------------------------------------------------------------------

def rule_word(explanation: str) -> str:
    m = re.search(r'the word "(.*?)"', explanation)
    return m.group(1) if m else ""


def rule_judgement(system: str, explanation: str, excerpt: str) -> int:
    """1/0 for one excerpt, as the rule scorer judges it (the test recomputes expectations with it)."""
    word = rule_word(explanation)
    if "at random" in system:  # fuzzing: every marked span is exactly the word
        spans = [s.strip() for s in re.findall(r"<<(.*?)>>", excerpt)]
        return int(bool(spans) and all(s == word for s in spans))
    return int(bool(word) and word in excerpt)


def rule_reply(messages: list[dict[str, str]]) -> str:
    system = messages[0]["content"]
    user = [m for m in messages if m["role"] == "user"][-1]["content"]  # a prefilled reply start is ignored
    if "[EXPLANATION]" in system:
        spans = Counter(s.strip() for s in re.findall(r"<<(.*?)>>", user))
        word = spans.most_common(1)[0][0] if spans else "nothing"
        return f'Most marked tokens are the same word.\n[EXPLANATION]: the word "{word}"'
    explanation = re.search(r"^Explanation: (.*)$", user, re.MULTILINE).group(1)  # type: ignore[union-attr]
    excerpts = re.findall(r"^Excerpt \d+: (.*)$", user, re.MULTILINE)
    return json.dumps([rule_judgement(system, explanation, e) for e in excerpts])


# the server -------------------------------------------------------------------------------------------------

@dataclass
class ChatServer:
    url: str
    chat: LocalChat
    mode: str = "model"
    """model | rule | timeout | status | malformed | refusal | no_choices"""
    status: int = 500
    fail_first: int = 0
    """Answer HTTP ``status`` to this many requests first, then follow ``mode``."""
    refuse_if: str | None = None
    """Answer HTTP 400 to requests whose messages contain this text."""
    retry_after: str = "0"
    """Retry-After header sent with HTTP 429."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def reset(self) -> None:
        self.mode, self.status, self.fail_first, self.refuse_if, self.retry_after = "model", 500, 0, None, "0"
        self.requests.clear()
        self.release.set()
        self.release = threading.Event()


def _handler(ctrl: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

        def _error(self, status: int, message: str) -> None:
            headers = {"Retry-After": ctrl.retry_after} if status == 429 else None
            self._send(status, json.dumps({"error": {"message": message, "type": "test"}}).encode(), headers)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw)
            ctrl.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if self.path != "/v1/chat/completions":
                return self._error(404, f"no route {self.path}")
            if ctrl.fail_first > 0:
                ctrl.fail_first -= 1
                return self._error(ctrl.status, "failing on purpose")
            messages = body["messages"]
            if ctrl.refuse_if and any(ctrl.refuse_if in m["content"] for m in messages):
                return self._error(400, f"this server refuses prompts mentioning {ctrl.refuse_if!r}")
            mode = ctrl.mode
            if mode == "timeout":
                ctrl.release.wait(10)
                return self._error(500, "too late")
            if mode == "status":
                return self._error(ctrl.status, f"HTTP {ctrl.status} on purpose")
            if mode == "malformed":
                return self._send(200, b'{"choices": [{"message": {"content": "unterminated')
            if mode == "no_choices":
                return self._send(200, json.dumps({"object": "chat.completion"}).encode())
            if mode == "refusal":
                msg = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
                return self._send(200, json.dumps({"choices": [{"index": 0, "message": msg,
                                                                "finish_reason": "stop"}]}).encode())
            if mode == "rule":
                text = rule_reply(messages)
            else:
                text = ctrl.chat.complete([Message(m["role"], m["content"]) for m in messages],
                                          max_tokens=int(body.get("max_tokens") or 16))
            out = {"id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"),
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop"}]}
            self._send(200, json.dumps(out).encode())

    return Handler


@pytest.fixture(scope="session")
def tiny_chat(tiny_lm) -> LocalChat:
    """The tiny Llama as a chat model. Its config says 256 positions, but rotary positions extrapolate, so
    the explainer prompts (longer than 256 tokens of the tiny tokenizer) are allowed."""
    return LocalChat(tiny_lm, lock=threading.Lock(), max_context=4096)


@pytest.fixture(scope="session")
def _chat_server(tiny_chat: LocalChat):
    ctrl = ChatServer(url="", chat=tiny_chat)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ctrl))
    httpd.daemon_threads = True
    ctrl.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield ctrl
    ctrl.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def chat_server(_chat_server: ChatServer):
    """The session's server, reset to mode ``model`` for each test."""
    _chat_server.reset()
    yield _chat_server
    _chat_server.reset()


# a tiny SAE, an analysis and a context pool ------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_vocab(tiny_lm) -> list[str]:
    n = max(tiny_lm.vocab_size, len(tiny_lm.tokenizer))
    return tiny_lm.tokenizer.batch_decode([[i] for i in range(n)])


@pytest.fixture(scope="session")
def tiny_contexts(tiny_lm):
    from interpretability_workbench.activations.corpus import load_texts, make_contexts

    return make_contexts(tiny_lm.tokenizer, load_texts(None)[:80], context_size=32, max_contexts=24)


@pytest.fixture(scope="session")
def tiny_sae(tiny_lm):
    from interpretability_workbench.sae.config import SAEConfig
    from interpretability_workbench.sae.model import SparseAutoencoder

    cfg = SAEConfig(d_in=tiny_lm.d_model, d_sae=48, architecture="topk", k=6, hook_name=HOOK,
                    model_id=tiny_lm.model_id, context_size=32, apply_b_dec_to_input=False)
    sae = SparseAutoencoder(cfg)
    sae.reset_parameters(seed=0)
    return sae


@pytest.fixture(scope="session")
def tiny_analysis(tiny_lm, tiny_sae, tiny_contexts, tiny_vocab):
    """Stored-row shape (``run_analysis`` rows: ``data_json``, ``max_act``) for every feature."""
    from interpretability_workbench.features.analysis import (
        AnalysisConfig,
        run_analysis,
    )

    cfg = AnalysisConfig(n_top=6, n_quantiles=5, examples_per_quantile=2, window_before=6, window_after=3)
    return run_analysis(tiny_lm, tiny_sae, tiny_contexts, tiny_vocab, cfg)


@pytest.fixture(scope="session")
def tiny_pool(tiny_lm, tiny_sae, tiny_contexts, tiny_vocab):
    from interpretability_workbench.features.explain import build_context_pool

    torch.manual_seed(0)
    return build_context_pool(tiny_lm, tiny_sae, tiny_contexts, tiny_vocab, n_contexts=16, seed=3, batch_size=5)
