"""Provenance graph results and options (dataclasses; the wire schemas live in server/schemas)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from ..model.hook_names import parse_hook_name
from ..sae.model import SparseAutoencoder

# order of hook points inside one block: resid_pre -> attn_out -> mlp_out -> resid_post
_KIND_ORDER = {"resid_pre": 0, "attn_out": 1, "mlp_out": 2, "resid_post": 3}


def hook_order(hook: str) -> tuple[int, int]:
    """Sort key of a hook point in forward order (blocks.L.hook_resid_post comes before blocks.L+1.*)."""
    hn = parse_hook_name(hook)
    return hn.layer, _KIND_ORDER[hn.kind]


class SAERef(NamedTuple):
    """One SAE taking part in a graph."""

    sae_id: str
    sae: SparseAutoencoder
    hook_name: str

    @property
    def layer(self) -> int:
        return parse_hook_name(self.hook_name).layer

    @property
    def kind(self) -> str:
        return parse_hook_name(self.hook_name).kind

    @property
    def order(self) -> tuple[int, int]:
        return hook_order(self.hook_name)


@dataclass
class GraphOptions:
    """How far to trace and how much to keep."""

    top_k: int = 5
    """Incoming edges kept per node (strongest |weight| first)."""
    threshold: float = 0.0
    """Edges with |weight| at or below this are dropped."""
    max_nodes: int = 50
    """Feature nodes in the graph, target included (logit nodes are extra)."""
    max_edges: int = 200
    """Feature -> feature edges in the graph."""
    validate: int = 8
    """How many of the strongest edges to check by ablation (prompt only; 0 = none)."""
    n_logits: int = 5
    """Top positive and top negative tokens of the target's direct logit effect."""

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")
        if self.max_nodes < 1 or self.max_edges < 0:
            raise ValueError("max_nodes must be >= 1 and max_edges >= 0")
        if self.validate < 0 or self.n_logits < 0:
            raise ValueError("validate and n_logits must be >= 0")


@dataclass
class GraphNode:
    id: str
    """Stable id inside the graph: ``L{layer}/{feature}`` (``L{layer}.{kind}/{feature}`` when two SAEs
    share a layer), ``logit/{token_id}`` for logit nodes."""
    kind: str
    """target | feature | logit"""
    layer: int
    """Block index (logit nodes: n_layers, i.e. after the last block)."""
    feature: int
    """Feature index in its SAE (logit nodes: the token id)."""
    sae_id: str | None = None
    hook_name: str | None = None
    label: str | None = None
    """Label from the feature analysis (label, else auto_label); the token text for logit nodes."""
    activation: float | None = None
    """Feature activation on the prompt at ``position`` (None without a prompt)."""
    position: int | None = None
    """Prompt position the node is measured at (target: where it fires most; upstream: where its
    attribution to its strongest child is largest)."""
    token: str | None = None
    """The prompt token at ``position``."""
    error_attribution: float | None = None
    """Attribution of the upstream SAEs' reconstruction errors to this node (what the features miss)."""


@dataclass
class GraphEdge:
    source: str
    target: str
    weight: float
    """attribution with a prompt, else the virtual weight."""
    virtual_weight: float | None = None
    """Input-independent: (s_t / s_u) · W_dec_u[j] · W_enc_t[:, i] (direct path through the residual)."""
    attribution: float | None = None
    """Prompt-specific: Σ_positions f_u · ∂pre_t/∂f_u, SAE errors kept (None without a prompt)."""


@dataclass
class EdgeCheck:
    source: str
    target: str
    predicted: float
    """The edge's attribution (linear estimate of what ablating the source removes from the target)."""
    actual: float
    """Measured: target pre-activation clean − with the source feature ablated (errors kept)."""


@dataclass
class Validation:
    edges: list[EdgeCheck] = field(default_factory=list)
    correlation: float | None = None
    """Pearson r of predicted vs actual over the checked edges (None under 2 edges or no variance)."""


@dataclass
class LogitEffect:
    token: str
    id: int
    effect: float
    """Change in this token's logit per unit of feature activation (direct path only)."""


@dataclass
class DownstreamLogits:
    positive: list[LogitEffect] = field(default_factory=list)
    negative: list[LogitEffect] = field(default_factory=list)


@dataclass
class ProvenanceGraph:
    target: str
    """Id of the target node."""
    prompt: str | None
    depth: int
    upstream_sae_ids: list[str]
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    validation: Validation | None
    downstream_logits: DownstreamLogits
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
