"""Wire schemas of the feature explorer (``/api/saes/{sae_id}/features``, ``/activations``, ``/analysis``)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class FeatureSummary(BaseModel):
    index: int = Field(description="Feature (latent) index in the SAE.")
    label: str = Field(description="Label shown: the user's label when set, else the automatic one.")
    auto_label: str | None = Field(None, description="Automatic label from the feature's peak tokens.")
    user_label: str | None = Field(None, description="Label set by the user (null when none).")
    density: float | None = Field(None, description="Fraction of analysed tokens on which the feature is active.")
    max_activation: float | None = Field(None, description="Largest activation seen in the analysis corpus.")
    mean_activation: float | None = Field(None, description="Mean activation over the tokens where it is active.")
    top_tokens: list[str] = Field(default_factory=list, description="Tokens its top contexts peak on, most frequent first (byte pieces of a multi-byte character as '<0xE2>').")
    starred: bool = Field(False, description="Starred by the user.")
    consistency: float | None = Field(None, description="Default sort score, 0..1: how much the top contexts agree on a non-whitespace peak token, share of non-whitespace peaks × (1 − entropy of their tokens / ln(number of top contexts)); 1 when every top context peaks on the same word, 0 for whitespace-only and dead features; null for analyses made before it existed.")
    degenerate: bool | None = Field(None, description="At least half of the top contexts peak on a whitespace-only token (special tokens and position 0 are never peaks); hidden by hide_degenerate.")
    explanation: str | None = Field(None, description="The latest natural-language explanation (the user's label still wins as `label`).")
    detection: float | None = Field(None, description="Detection balanced accuracy of the explanation (0.5 = chance).")
    fuzzing: float | None = Field(None, description="Fuzzing balanced accuracy of the explanation (0.5 = chance).")
    explanation_error: str | None = Field(None, description="What failed when the feature was last explained, per stage (e.g. 'explanation: the explainer refused ...; fuzzing: ...'); null when nothing failed or it was never explained.")
    explanation_error_kind: str | None = Field(None, description="Kind of the first failure of explanation_error: timeout, refused, unauthorized, rate_limited, server_error, unreachable, malformed_response, malformed_reply, prompt_too_long, not_enough_examples or internal.")


class ExplanationDetail(BaseModel):
    text: str | None = Field(None, description="The explanation (null when the explainer failed).")
    explainer_name: str = Field(description="Which model explained, e.g. local:HuggingFaceTB/SmolLM2-135M-Instruct or openai:llama3@host.")
    prompt_version: str = Field(description="Version of the explainer and scorer prompts.")
    scorer_name: str | None = Field(None, description="Which model scored (null: not scored).")
    detection: float | None = Field(None, description="Detection balanced accuracy.")
    fuzzing: float | None = Field(None, description="Fuzzing balanced accuracy.")
    error: str | None = Field(None, description="What failed for this feature, per stage.")
    error_kind: str | None = Field(None, description="timeout, refused, unauthorized, rate_limited, server_error, unreachable, malformed_response, malformed_reply, prompt_too_long, not_enough_examples or internal.")
    created_at: float = Field(description="Unix seconds.")


class FeaturePage(BaseModel):
    items: list[FeatureSummary] = Field(description="This page of features.")
    total: int = Field(description="Features matching the query (all pages).")
    offset: int = Field(description="Index of the first item in the full result.")
    limit: int = Field(description="Page size asked for.")


class ContextWindow(BaseModel):
    tokens: list[str] = Field(description="Window of tokens around the peak.")
    token_ids: list[int] = Field(default_factory=list, description="Their token ids.")
    activations: list[float] = Field(description="This feature's activation on each token of the window.")
    context: int = Field(description="Index of the context in the analysis corpus.")
    position: int = Field(description="Position of the peak token in its context.")
    start: int = Field(description="Context position of the window's first token.")
    max: float = Field(description="The feature's activation at the peak token.")


class QuantileBucket(BaseModel):
    label: str = Field(description="Activation range as fractions of the max, e.g. '0.40–0.60 of max'.")
    lo: float = Field(description="Lower bound of the range (exclusive).")
    hi: float = Field(description="Upper bound of the range (inclusive).")
    examples: list[ContextWindow] = Field(description="Sampled examples whose peak falls in the range.")


class Histogram(BaseModel):
    edges: list[float] = Field(description="n+1 bin edges for n counts (activations: log-spaced, 20 bins a decade).")
    counts: list[int] = Field(description="Count per bin.")


class TokenValue(BaseModel):
    token: str = Field(description="Token text.")
    id: int = Field(description="Token id.")
    value: float = Field(description="Direct logit effect of a unit activation (through the final norm's weight and W_U).")


class Neighbour(BaseModel):
    index: int = Field(description="The other feature.")
    label: str = Field(description="Its label ('' when not analysed).")
    score: float = Field(description="Decoder cosine similarity (neighbours) or Jaccard co-activation (coactive).")


class TokenCount(BaseModel):
    token: str = Field(description="Peak token.")
    id: int = Field(description="Token id.")
    count: int = Field(description="Top contexts peaking on it.")
    key: str = Field(description="Search key (stripped, lower-cased); q=token:<key> finds it.")


class FeatureDetail(FeatureSummary):
    notes: str = Field("", description="The user's notes.")
    analysed: bool = Field(description="Whether analysis results exist for this feature.")
    top_contexts: list[ContextWindow] = Field(description="Top-activating contexts, strongest first.")
    quantiles: list[QuantileBucket] = Field(description="Examples across the activation range, highest bucket first.")
    histogram: Histogram = Field(description="Activation histogram over the tokens where the feature is active.")
    logit_histogram: Histogram | None = Field(None, description="Histogram of the direct logit effect over the vocabulary.")
    top_positive_logits: list[TokenValue] = Field(description="Tokens the feature promotes most.")
    top_negative_logits: list[TokenValue] = Field(description="Tokens the feature suppresses most.")
    neighbours: list[Neighbour] = Field(description="Features with the most similar decoder directions.")
    coactive: list[Neighbour] | None = Field(None, description="Features most often active on the same tokens (null when not tracked).")
    top_token_counts: list[TokenCount] = Field(default_factory=list, description="Peak tokens with counts.")
    explanation_detail: ExplanationDetail | None = Field(None, description="The latest explanation with its explainer, prompt version, scores and any error.")


class FeatureUpdate(BaseModel):
    label: str | None = Field(None, max_length=200, description="User label ('' restores the automatic one).")
    notes: str | None = Field(None, max_length=20000, description="Free-text notes.")
    starred: bool | None = Field(None, description="Star or unstar.")


class ActivationsRequest(BaseModel):
    text: str = Field(description="Text to run through the model and the SAE.")
    top_k: int = Field(5, ge=1, le=256, description="Firing features reported per token.")
    features: list[int] | None = Field(None, max_length=1024, description="Report these features' activations on every token (default: the union of each token's top_k).")


class TokenFeature(BaseModel):
    index: int = Field(description="Feature index.")
    label: str = Field(description="Its label ('' when not analysed).")
    value: float = Field(description="Activation on this token.")


class FeatureTrace(BaseModel):
    index: int = Field(description="Feature index.")
    label: str = Field(description="Its label ('' when not analysed).")
    max: float = Field(description="Largest activation over the text.")
    activations: list[float] = Field(description="Activation on each token.")


class ActivationsResponse(BaseModel):
    tokens: list[str] = Field(description="The text's tokens (the BOS position is not reported).")
    token_ids: list[int] = Field(description="Their token ids.")
    features: list[FeatureTrace] = Field(description="Per feature, its activation on every token; strongest first.")
    per_token: list[list[TokenFeature]] = Field(description="Per token, the firing features, strongest first.")
    bos_excluded: bool = Field(description="True when a BOS token was put first and left out of the report.")


class AnalysisRequest(BaseModel):
    corpus: str | None = Field(None, description="Corpus id (GET /api/corpora); default: the built-in corpus.")
    n_tokens: int | None = Field(None, ge=1, le=10_000_000, description="Analyse at most this many tokens (the first ones of the corpus); default: IWB_ANALYSIS_TOKENS, whose default 0 reads the whole corpus.")


class AnalysisProgress(BaseModel):
    phase: str = Field(description="starting | activations | windows | weights | saving.")
    done: int = Field(description="Units done in this phase (tokens for 'activations').")
    total: int = Field(description="Units in this phase.")


class AnalysisStatus(BaseModel):
    sae_id: str = Field(description="The SAE.")
    status: str = Field(description="none | running | done | failed | cancelled.")
    progress: AnalysisProgress | None = Field(None, description="Live progress while running.")
    n_tokens: int | None = Field(None, description="Tokens analysed (when done).")
    created_at: float | None = Field(None, description="First analysis start (unix seconds).")
    updated_at: float | None = Field(None, description="Last status change (unix seconds).")
    summary: dict[str, Any] | None = Field(None, description="Corpus, sizes, dead features, mean L0, timings (when done).")
    error: str | None = Field(None, description="Why it failed or was cancelled.")


class FeatureExportRow(BaseModel):
    """One line of the JSON-lines export (close to Neuronpedia's feature rows)."""

    modelId: str = Field(description="Base model id.")
    layer: str = Field(description="Hook name the SAE reads.")
    saeId: str = Field(description="SAE id.")
    index: int = Field(description="Feature index.")
    maxActApprox: float | None = Field(None, description="Max activation in the analysis corpus.")
    frac_nonzero: float | None = Field(None, description="Density.")
    pos_str: list[str] = Field(description="Top promoted tokens.")
    pos_values: list[float] = Field(description="Their logit effects.")
    neg_str: list[str] = Field(description="Top suppressed tokens.")
    neg_values: list[float] = Field(description="Their logit effects.")
    freq_hist_data_bar_heights: list[int] = Field(description="Activation histogram counts.")
    freq_hist_data_bar_values: list[float] = Field(description="Bin centres (geometric).")
    logits_hist_data_bar_heights: list[int] = Field(description="Logit-effect histogram counts.")
    logits_hist_data_bar_values: list[float] = Field(description="Bin centres.")
    activations: list[dict[str, Any]] = Field(description="Top contexts: tokens, values, maxValue, maxValueTokenIndex.")
    explanations: list[dict[str, Any]] = Field(description="Label as {description, typeName}.")
