"""The chat clients for real: the tiny Llama in-process (greedy output checked against a hand-written
greedy loop), and the same model behind a real HTTP server speaking OpenAI chat-completions, with the
server failing on purpose to check every typed error."""
from __future__ import annotations

import dataclasses
import socket
import threading

import pytest
import torch

from interpretability_workbench.features.explain import (
    ChatProtocolError,
    ChatRateLimited,
    ChatRefused,
    ChatServerError,
    ChatTimeout,
    ChatUnauthorized,
    ChatUnavailable,
    LocalChat,
    Message,
    OpenAIChat,
    PromptTooLong,
    chat_completions_url,
)

MESSAGES = [Message("system", "You describe features."), Message("user", "Excerpt 1: the <<cat>> sat")]


@torch.no_grad()
def greedy(model, ids: list[int], n: int, eos: int | None) -> list[int]:
    """Plain greedy decoding without ``generate`` (full forward each step)."""
    out: list[int] = []
    for _ in range(n):
        logits = model(torch.tensor([ids + out])).logits[0, -1]
        nxt = int(logits.argmax())
        if nxt == eos:
            break
        out.append(nxt)
    return out


def test_completions_url():
    assert chat_completions_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_completions_url("http://h:11434/v1/") == "http://h:11434/v1/chat/completions"
    assert chat_completions_url("https://api.x.com/v1/chat/completions") == "https://api.x.com/v1/chat/completions"
    with pytest.raises(ValueError, match="IWB_EXPLAINER_URL"):
        chat_completions_url("localhost:8000")


def test_local_plain_prompt_is_greedy(tiny_lm, tiny_chat: LocalChat):
    assert not tiny_chat.uses_chat_template
    text = tiny_chat.prompt_text(MESSAGES)
    assert text == ("System: You describe features.\n\nUser: Excerpt 1: the <<cat>> sat\n\nAssistant:")
    ids = tiny_chat.prompt_ids(MESSAGES)[0].tolist()
    tok = tiny_lm.tokenizer
    assert ids == [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    reply = tiny_chat.complete(MESSAGES, max_tokens=12)
    assert reply == tok.decode(greedy(tiny_lm.model, ids, 12, tok.eos_token_id), skip_special_tokens=True)
    assert tiny_chat.complete(MESSAGES, max_tokens=12) == reply
    assert tiny_chat.name == f"local:{tiny_lm.model_id}"


def test_local_chat_template(tiny_lm, tiny_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    chat = LocalChat(dataclasses.replace(tiny_lm, tokenizer=tok), max_context=1024)
    assert chat.uses_chat_template
    text = chat.prompt_text(MESSAGES)
    assert text == ("<|system|>You describe features.\n<|user|>Excerpt 1: the <<cat>> sat\n<|assistant|>")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert chat.prompt_ids(MESSAGES)[0].tolist() == ids  # the template's text only, no BOS added
    assert chat.complete(MESSAGES, max_tokens=8) == tok.decode(greedy(tiny_lm.model, ids, 8, tok.eos_token_id),
                                                               skip_special_tokens=True)


def test_local_prefill_continues_the_reply(tiny_lm, tiny_llama_dir, tiny_chat: LocalChat):
    from transformers import AutoTokenizer

    pre = [*MESSAGES, Message("assistant", "[EXPLANATION]:")]
    assert tiny_chat.supports_prefill
    text = tiny_chat.prompt_text(pre)
    assert text.endswith("User: Excerpt 1: the <<cat>> sat\n\nAssistant: [EXPLANATION]:")
    ids = tiny_chat.prompt_ids(pre)[0].tolist()
    tok = tiny_lm.tokenizer
    assert tiny_chat.complete(pre, max_tokens=6) == tok.decode(greedy(tiny_lm.model, ids, 6, tok.eos_token_id),
                                                               skip_special_tokens=True)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    chat = LocalChat(dataclasses.replace(tiny_lm, tokenizer=tok), max_context=1024)
    assert chat.prompt_text(pre).endswith("<|user|>Excerpt 1: the <<cat>> sat\n<|assistant|>[EXPLANATION]:")


def test_local_sampling_is_seeded(tiny_lm):
    a = LocalChat(tiny_lm, temperature=1.0, seed=5).complete(MESSAGES, max_tokens=10)
    b = LocalChat(tiny_lm, temperature=1.0, seed=5).complete(MESSAGES, max_tokens=10)
    assert a == b
    state = torch.random.get_rng_state()
    LocalChat(tiny_lm, temperature=1.0, seed=6).complete(MESSAGES, max_tokens=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone


def test_local_prompt_too_long(tiny_lm):
    chat = LocalChat(tiny_lm)  # the config's 256 positions
    assert chat.max_context == 256
    with pytest.raises(PromptTooLong, match="exceeds the model's context of 256") as e:
        chat.complete([Message("user", "word " * 300)], max_tokens=8)
    assert e.value.kind == "prompt_too_long" and e.value.status_code == 413


def test_local_runs_under_the_lock(tiny_lm):
    lock = threading.Lock()
    chat = LocalChat(tiny_lm, lock=lock)
    out: list[str] = []
    with lock:
        t = threading.Thread(target=lambda: out.append(chat.complete(MESSAGES, max_tokens=3)))
        t.start()
        t.join(0.5)
        assert t.is_alive() and not out  # blocked while someone else holds the model
    t.join()
    assert len(out) == 1


def test_endpoint_answers_with_the_same_model(chat_server, tiny_chat: LocalChat):
    with OpenAIChat(chat_server.url + "/v1", "tiny", api_key="sk-test", seed=3) as client:
        reply = client.complete(MESSAGES, max_tokens=10)
        assert client.name == f"openai:tiny@{chat_server.url.removeprefix('http://')}"
    assert reply == tiny_chat.complete(MESSAGES, max_tokens=10)
    (req,) = chat_server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    assert req["body"] == {"model": "tiny", "messages": [m.to_dict() for m in MESSAGES], "max_tokens": 10,
                           "temperature": 0.0, "seed": 3}


def test_no_api_key_sends_no_authorization(chat_server):
    chat_server.mode = "rule"
    with OpenAIChat(chat_server.url, "m", seed=None) as client:
        client.complete([Message("system", "[EXPLANATION]"), Message("user", "<<a>>")], max_tokens=5)
    req = chat_server.requests[0]
    assert "Authorization" not in req["headers"] and "seed" not in req["body"]


@pytest.mark.parametrize("status, error, kind, attempts", [
    (400, ChatRefused, "refused", 1),
    (404, ChatRefused, "refused", 1),
    (401, ChatUnauthorized, "unauthorized", 1),
    (403, ChatUnauthorized, "unauthorized", 1),
    (429, ChatRateLimited, "rate_limited", 3),
    (500, ChatServerError, "server_error", 3),
    (503, ChatServerError, "server_error", 3),
])
def test_http_errors(chat_server, status, error, kind, attempts):
    chat_server.mode, chat_server.status = "status", status
    delays: list[float] = []
    with OpenAIChat(chat_server.url, "m", max_retries=2, backoff_s=0.25, sleep=delays.append) as client:
        with pytest.raises(error, match=f"HTTP {status}") as e:
            client.complete(MESSAGES, max_tokens=4)
    assert e.value.kind == kind and e.value.http_status == status
    assert f"HTTP {status} on purpose" in e.value.detail  # the endpoint's own message is kept
    assert len(chat_server.requests) == attempts
    assert delays == [0.25, 0.5][: attempts - 1]  # exponential backoff between retries


def test_retry_then_success_and_retry_after(chat_server):
    chat_server.mode, chat_server.status, chat_server.fail_first, chat_server.retry_after = "rule", 429, 2, "3"
    delays: list[float] = []
    with OpenAIChat(chat_server.url, "m", max_retries=2, backoff_s=0.5, sleep=delays.append) as client:
        reply = client.complete([Message("system", "[EXPLANATION]"), Message("user", "<<dog>> <<dog>>")],
                                max_tokens=20)
    assert reply.endswith('[EXPLANATION]: the word "dog"')
    assert len(chat_server.requests) == 3 and delays == [3.0, 3.0]  # Retry-After beats the shorter backoff


def test_timeout(chat_server):
    chat_server.mode = "timeout"
    with OpenAIChat(chat_server.url, "m", timeout_s=0.2, max_retries=1, backoff_s=0) as client:
        with pytest.raises(ChatTimeout, match="did not answer within 0.2 s") as e:
            client.complete(MESSAGES, max_tokens=4)
    assert e.value.kind == "timeout" and e.value.status_code == 504
    assert len(chat_server.requests) == 2


@pytest.mark.parametrize("mode, error, match", [
    ("malformed", ChatProtocolError, "not JSON"),
    ("no_choices", ChatProtocolError, "without 'choices'"),
    ("refusal", ChatRefused, "the model refused: I can't help"),
])
def test_malformed_and_refused_bodies(chat_server, mode, error, match):
    chat_server.mode = mode
    with OpenAIChat(chat_server.url, "m", max_retries=2) as client:
        with pytest.raises(error, match=match):
            client.complete(MESSAGES, max_tokens=4)
    assert len(chat_server.requests) == 1  # not retried


def test_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with OpenAIChat(f"http://127.0.0.1:{port}", "m", max_retries=1, backoff_s=0) as client:
        with pytest.raises(ChatUnavailable, match="cannot reach") as e:
            client.complete(MESSAGES, max_tokens=4)
    assert e.value.kind == "unreachable"
