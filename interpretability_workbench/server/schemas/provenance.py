"""Wire schemas of /api/provenance."""
from __future__ import annotations

from pydantic import BaseModel, Field


class ProvenanceNode(BaseModel):
    id: str = Field(description="Node id: 'L{layer}/{feature}' ('L{layer}.{kind}/{feature}' when two SAEs share a "
                                "layer), or 'logit/{token_id}' for a logit node.")
    kind: str = Field(description="'target' (the traced feature), 'feature' (upstream) or 'logit' (downstream token).")
    layer: int = Field(description="Block index of the SAE's hook point; logit nodes sit after the last block (n_layers).")
    feature: int = Field(description="Feature index in its SAE; for logit nodes the token id.")
    sae_id: str | None = Field(None, description="SAE the feature belongs to (null for logit nodes).")
    hook_name: str | None = Field(None, description="Hook point the SAE reads, e.g. blocks.4.hook_resid_post.")
    label: str | None = Field(None, description="Label from the feature analysis (label, else auto label); null when "
                                                "none exists; the token text for logit nodes.")
    activation: float | None = Field(None, description="Feature activation on the prompt at `position` (null without a prompt).")
    position: int | None = Field(None, description="Prompt position the node is measured at: the target where it fires "
                                                   "most, an upstream node where its attribution is largest.")
    token: str | None = Field(None, description="Prompt token at `position`.")
    error_attribution: float | None = Field(None, description="Attribution of the upstream SAEs' reconstruction errors "
                                                              "to this node: what the features do not explain.")


class ProvenanceEdge(BaseModel):
    source: str = Field(description="Upstream node id.")
    target: str = Field(description="Downstream node id.")
    weight: float = Field(description="The attribution when a prompt was given, else the virtual weight; for "
                                      "target->logit edges the direct logit effect.")
    virtual_weight: float | None = Field(None, description="Input-independent weight (s_t/s_u)·W_dec_u[j]·W_enc_t[:, i].")
    attribution: float | None = Field(None, description="Prompt attribution: Σ over positions of activation × gradient "
                                                        "of the target's pre-activation, SAE errors kept.")


class EdgeValidationItem(BaseModel):
    source: str = Field(description="Upstream node id.")
    target: str = Field(description="Downstream node id.")
    predicted: float = Field(description="The edge's attribution (linear estimate of the ablation effect).")
    actual: float = Field(description="Measured change in the target's pre-activation when the source feature is "
                                      "ablated on the prompt (clean − ablated; SAE errors kept).")


class ProvenanceValidation(BaseModel):
    edges: list[EdgeValidationItem] = Field(description="Checked edges, strongest attribution first.")
    correlation: float | None = Field(None, description="Pearson correlation of predicted vs actual (null under 2 "
                                                        "edges or without variance).")


class LogitEffectItem(BaseModel):
    token: str = Field(description="Token text.")
    id: int = Field(description="Token id.")
    effect: float = Field(description="Direct logit change per unit of target activation (decoder direction through "
                                      "the final norm gain and the unembedding).")


class DownstreamLogitsOut(BaseModel):
    positive: list[LogitEffectItem] = Field(description="Tokens the target feature promotes most.")
    negative: list[LogitEffectItem] = Field(description="Tokens the target feature suppresses most.")


class ProvenanceResponse(BaseModel):
    target: str = Field(description="Id of the target node.")
    prompt: str | None = Field(None, description="The prompt attribution and validation ran on (null: weights only).")
    depth: int = Field(description="Number of upstream SAE layers traversed.")
    upstream_sae_ids: list[str] = Field(description="Upstream SAEs used, nearest first.")
    nodes: list[ProvenanceNode] = Field(description="Feature nodes (target first) followed by logit nodes.")
    edges: list[ProvenanceEdge] = Field(description="Edges source -> target (upstream feature -> feature, target -> logit).")
    validation: ProvenanceValidation | None = Field(None, description="Ablation check of the strongest edges (prompt only).")
    downstream_logits: DownstreamLogitsOut = Field(description="The target's direct effect on output logits.")
    seconds: float = Field(description="Time spent building the graph.")


class UpstreamSAEOut(BaseModel):
    sae_id: str = Field(description="SAE id.")
    name: str = Field(description="SAE name.")
    layer: int = Field(description="Block index it reads.")
    hook_name: str = Field(description="Its hook point.")


class UpstreamTrainRequest(BaseModel):
    layers: list[int] = Field(description="Layers to train (the suggested ones).")
    hook: str = Field(description="Hook kind, as the target's.")
    d_sae: int = Field(description="Latents per SAE, as the target's.")
    architecture: str = Field(description="Architecture, as the target's.")
    k: int | None = Field(None, description="Active latents per token, as the target's (topk, batchtopk).")


class ProvenanceUpstream(BaseModel):
    sae_id: str = Field(description="The target SAE.")
    layer: int = Field(description="Its block index.")
    hook: str = Field(description="Its hook kind (resid_post, ...).")
    available: list[UpstreamSAEOut] = Field(description="The SAE per lower layer a graph would trace through, nearest first (empty: provenance cannot be traced yet).")
    missing_layers: list[int] = Field(description="Layers below the target without an SAE, nearest first.")
    suggested_layers: list[int] = Field(description="The nearest layers without an SAE that a graph of the asked depth would use: train these.")
    train: UpstreamTrainRequest = Field(description="A POST /api/training body (plus total_tokens of your choice) that trains the suggested layers like the target.")
