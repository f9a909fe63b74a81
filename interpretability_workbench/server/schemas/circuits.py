"""Wire schemas of /api/circuits."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .patches import Patch


class CircuitRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=20_000, description="Prompt to trace (BOS is put first by the tokenisation rule).")
    set_id: str = Field(min_length=1, max_length=200, description="Transcoder set to trace with (GET /api/transcoders).")
    max_feature_nodes: int = Field(512, ge=1, le=16384, description="Feature nodes that get rows, most influential first (cost grows with its square).")
    max_n_logits: int = Field(10, ge=1, le=100, description="Most logit nodes.")
    desired_logit_prob: float = Field(0.95, gt=0, le=1, description="Logit nodes: most probable tokens until this cumulative probability.")
    target: str | None = Field(None, min_length=1, max_length=200, description="A next token the graph must explain (one token, e.g. \" Paris\" with its leading space): a logit node whatever its probability.")
    batch_size: int = Field(64, ge=1, le=1024, description="Targets per backward pass.")
    node_threshold: float = Field(0.8, ge=0, le=1, description="Default pruning: share of influence the kept nodes hold.")
    edge_threshold: float = Field(0.98, ge=0, le=1, description="Default pruning: share of edge influence the kept edges hold.")
    validate_edges: int = Field(20, ge=0, le=200, description="Strongest edges checked by ablating their source in the real model (0 skips).")
    validate_freeze: Literal["none", "attention", "direct"] = Field("attention", description="What the check holds fixed: none (the real model), attention (patterns), direct (the local replacement model).")


class EdgeCheck(BaseModel):
    source: int = Field(description="Source feature node.")
    target: int = Field(description="Target node (feature or logit).")
    predicted: float = Field(description="Change the graph predicts at the target when the source is ablated (minus the edge weight).")
    measured: float = Field(description="Change measured in the model.")


class Validation(BaseModel):
    pearson: float | None = Field(None, description="Correlation of predicted and measured changes.")
    sign_agreement: float | None = Field(None, description="Share of checks whose measured change has the predicted sign.")
    freeze: str = Field(description="What was held fixed in the model.")
    checks: list[EdgeCheck] = Field(description="One per checked edge.")


class LogitNodeInfo(BaseModel):
    token: str = Field(description="Decoded token.")
    token_id: int = Field(description="Token id.")
    probability: float = Field(description="Probability at the last position.")


class CircuitSummary(BaseModel):
    n_tokens: int = Field(description="Prompt length (BOS included).")
    n_active_features: int | None = Field(None, description="Active transcoder features on the prompt.")
    n_features: int = Field(description="Feature nodes with rows.")
    n_nodes: int = Field(description="Nodes of the full graph.")
    n_pruned_nodes: int = Field(description="Nodes kept at the stored thresholds.")
    n_pruned_edges: int = Field(description="Edges kept at the stored thresholds.")
    replacement_score: float = Field(description="Share of token-to-logit influence through features rather than error nodes.")
    completeness_score: float = Field(description="Influence-weighted share of node inputs not from error nodes.")
    graph_seconds: float = Field(description="Time to build the graph.")
    total_seconds: float = Field(description="Time of the whole job (graph, pruning, scores, edge check).")
    timings: dict[str, float] = Field(default_factory=dict, description="forward, logit_rows, feature_rows, total.")
    validation: Validation | None = Field(None, description="The intervention check of the strongest edges.")
    logits: list[LogitNodeInfo] = Field(default_factory=list, description="The logit nodes.")
    target: LogitNodeInfo | None = Field(None, description="The requested target token's logit node (none without a target).")


class Circuit(BaseModel):
    id: str = Field(description="Circuit id.")
    model_id: str = Field(description="Model it was traced on.")
    set_id: str = Field(description="Transcoder set it was traced with.")
    prompt: str = Field(description="The prompt.")
    status: Literal["queued", "running", "done", "failed", "cancelled"] = Field(description="Job status.")
    settings: dict[str, Any] = Field(description="The settings it was traced with.")
    summary: CircuitSummary | None = Field(None, description="Scores, sizes, timings and the edge check (done).")
    error: str | None = Field(None, description="Why it failed.")
    created_at: float = Field(description="Unix time it was queued.")
    updated_at: float = Field(description="Unix time of the last change.")


class GraphNode(BaseModel):
    node: int = Field(description="Index in the full graph (stable across prune thresholds).")
    kind: Literal["feature", "error", "token", "logit"] = Field(description="Node kind.")
    layer: int = Field(description="Block (tokens: -1; logits: n_layers).")
    pos: int = Field(description="Prompt position.")
    feature: int | None = Field(None, description="Feature index (features), token id (tokens, logits).")
    token: str | None = Field(None, description="The prompt token at this position, or the logit's token.")
    activation: float | None = Field(None, description="Feature activation.")
    probability: float | None = Field(None, description="Logit probability.")
    influence: float = Field(description="Influence on the logits (row-normalised, through all paths).")
    cumulative: float = Field(description="Share of total influence held by nodes at least as influential (what pruning thresholds).")
    label: str | None = Field(None, description="The feature's label, when it has one.")
    sae_id: str | None = Field(None, description="SAE-registry id of the feature's transcoder (GET /api/saes/{id}/features/{feature}).")


class GraphEdge(BaseModel):
    source: int = Field(description="Source node.")
    target: int = Field(description="Target node.")
    weight: float = Field(description="Direct effect of the source on the target.")


class GraphView(BaseModel):
    n_layers: int = Field(description="Blocks of the model.")
    prompt_tokens: list[str] = Field(description="Decoded prompt tokens, position 0 first.")
    input_ids: list[int] = Field(description="Prompt token ids.")
    n_nodes_total: int = Field(description="Nodes of the unpruned graph.")
    n_features_total: int = Field(description="Feature nodes of the unpruned graph.")
    node_threshold: float = Field(description="Pruning of this view: node share.")
    edge_threshold: float = Field(description="Pruning of this view: edge share.")
    nodes: list[GraphNode] = Field(description="Kept nodes (tokens and logits always).")
    edges: list[GraphEdge] = Field(description="Kept edges (the strongest, at most max_edges).")


class CircuitDetail(Circuit):
    graph: GraphView | None = Field(None, description="The pruned graph (done).")


class NodeValue(BaseModel):
    node: int = Field(ge=0, description="Feature node.")
    value: float = Field(0.0, allow_inf_nan=False, description="Activation to set (0 ablates).")


class InterveneRequest(BaseModel):
    nodes: list[NodeValue] = Field(min_length=1, max_length=256, description="Feature nodes set together (a supernode is several).")
    top_k: int = Field(10, ge=1, le=100, description="Tokens listed before and after.")


class TokenProbability(BaseModel):
    token: str = Field(description="Decoded token.")
    token_id: int = Field(description="Token id.")
    probability: float = Field(description="Probability.")
    logit: float = Field(description="Logit.")


class TokenMoved(BaseModel):
    token: str = Field(description="Decoded token.")
    token_id: int = Field(description="Token id.")
    before: float = Field(description="Probability before.")
    after: float = Field(description="Probability after.")


class LogitNodeChange(BaseModel):
    node: int = Field(description="Logit node.")
    token: str | None = Field(None, description="Its token.")
    token_id: int = Field(description="Token id.")
    predicted: float = Field(description="Change of the logit (minus the mean logit) the graph's direct edges predict.")
    measured: float = Field(description="Change measured in the model.")
    before: float = Field(description="Its probability before.")
    after: float = Field(description="Its probability with the nodes set.")


class AppliedIntervention(BaseModel):
    node: int = Field(description="Feature node.")
    layer: int = Field(description="Its layer.")
    pos: int = Field(description="Its position.")
    feature: int = Field(description="Its feature index.")
    activation: float = Field(description="Its activation on the prompt.")
    value: float = Field(description="The value it was set to.")


class InterveneResponse(BaseModel):
    before: list[TokenProbability] = Field(description="Top next tokens of the model.")
    after: list[TokenProbability] = Field(description="Top next tokens with the nodes set.")
    moved: list[TokenMoved] = Field(description="Tokens whose probability moved most.")
    kl: float = Field(description="KL(before ‖ after) in nats.")
    logit_nodes: list[LogitNodeChange] = Field(description="The graph's logit nodes: predicted (direct edges) and measured change.")
    interventions: list[AppliedIntervention] = Field(description="What was set.")


class NodePatchRequest(BaseModel):
    mode: Literal["clamp", "steer"] = Field("clamp", description="clamp: hold the feature at `value` (0 ablates; exact at this node's position); steer: add value·W_dec[f] to the MLP output.")
    value: float = Field(0.0, allow_inf_nan=False, description="Clamp value or steer strength.")
    name: str | None = Field(None, max_length=200, description="Patch name.")


class NodePatchResponse(BaseModel):
    patch: Patch = Field(description="The patch, live in the Patch console.")
    exact: bool = Field(description="Whether the patch equals the circuit intervention on this prompt (clamp on a feature that fires only at this node's position).")
    note: str = Field(description="What the patch does and how it differs from the circuit intervention.")


class CircuitStarted(BaseModel):
    id: str = Field(description="Circuit id; progress arrives on WS /ws as job events (kind circuit).")
    status: str = Field(description="queued.")
