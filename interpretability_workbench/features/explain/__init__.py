"""Natural-language explanations of SAE features and their scores (detection, fuzzing).

Domain only: the caller (a background job in the features service) builds ``FeatureExamples`` from stored
feature rows and a ``ContextPool``, picks a ``ChatClient`` (``LocalChat`` over a loaded model or
``OpenAIChat`` for an OpenAI-compatible endpoint), and runs ``explain_features``::

    pool = build_context_pool(lm, sae, contexts, vocab, n_contexts=256, seed=seed, lock=model_lock)
    items = (gather_feature_examples(row["idx"], row["data_json"], row["max_act"], pool, seed=seed)
             for row in feature_rows)                      # lazily, one stored row at a time
    client = LocalChat(lm, lock=model_lock)                # or OpenAIChat(url, model, api_key)
    explain_features(items, Explainer(client), Scorer(client), seed=seed, cancel=event, skip=done,
                     on_result=lambda r: store(ExplanationRecord.from_result(r)))
"""
from .clients import ChatClient, LocalChat, OpenAIChat, chat_completions_url, supports_prefill
from .errors import (ChatError, ChatProtocolError, ChatRateLimited, ChatRefused, ChatServerError, ChatTimeout,
                     ChatUnauthorized, ChatUnavailable, MalformedReply, NotEnoughExamples, PromptTooLong,
                     error_kind)
from .examples import (ActivatingSplit, Example, FeatureExamples, examples_from_row, feature_rng,
                       gather_feature_examples, hard_negative_examples, non_activating_examples, pick_negatives,
                       split_activating)
from .job import (ExplainConfig, Explainer, ExplanationRecord, ExplanationResult, JobSummary, explain_features,
                  explain_one)
from .pool import ContextPool, build_context_pool
from .prompts import PROMPT_VERSION, Message, parse_explanation, parse_judgements
from .scoring import Score, Scorer, ScoringConfig, balanced_accuracy

__all__ = [
    "PROMPT_VERSION", "ActivatingSplit", "ChatClient", "ChatError", "ChatProtocolError", "ChatRateLimited",
    "ChatRefused", "ChatServerError", "ChatTimeout", "ChatUnauthorized", "ChatUnavailable", "ContextPool",
    "Example", "ExplainConfig", "Explainer", "ExplanationRecord", "ExplanationResult", "FeatureExamples",
    "JobSummary", "LocalChat", "MalformedReply", "Message", "NotEnoughExamples", "OpenAIChat", "PromptTooLong",
    "Score", "Scorer", "ScoringConfig", "balanced_accuracy", "build_context_pool", "chat_completions_url",
    "error_kind", "examples_from_row", "explain_features", "explain_one", "feature_rng", "gather_feature_examples",
    "hard_negative_examples", "non_activating_examples", "parse_explanation", "parse_judgements", "pick_negatives",
    "split_activating", "supports_prefill",
]
