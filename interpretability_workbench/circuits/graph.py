"""AttributionGraph: the dense direct-effect matrix of one prompt's local replacement model.

Node order (circuit-tracer's): ``[selected features (sorted by layer, position, index), error nodes
(layer-major: layer * n_pos + pos), token-embedding nodes (pos), logit nodes (most probable first)]``.
``adjacency[target, source]`` is the direct effect of ``source`` on ``target``; only feature and logit
rows are filled (errors and tokens have no inputs). Saved as ``graph.json`` + ``graph.safetensors``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import Invalid, NotFound
from ..store.artifacts import atomic_dir

GRAPH_JSON = "graph.json"
GRAPH_TENSORS = "graph.safetensors"


class NodeRef(NamedTuple):
    kind: str
    """feature | error | token | logit"""
    layer: int
    """Block index (token nodes: -1; logit nodes: n_layers)."""
    pos: int
    """Prompt position (logit nodes: the last one)."""
    index: int
    """Feature index, token id (token and logit nodes) or -1 (error nodes)."""


@dataclass
class AttributionGraph:
    input_ids: list[int]
    """Prompt token ids, position 0 first."""
    n_layers: int
    """Blocks of the model (one transcoder slot each)."""
    active_features: Tensor
    """Every active feature ``[n_active 3]`` as (layer, pos, feature index), sorted."""
    activation_values: Tensor
    """Their activations ``[n_active]``."""
    selected_features: Tensor
    """Indices into ``active_features`` of the feature nodes in the graph ``[n_features]``, ascending."""
    adjacency: Tensor
    """Direct effects ``[n_nodes n_nodes]``, rows = targets, columns = sources."""
    logit_tokens: list[int]
    """Token ids of the logit nodes, most probable first."""
    logit_probabilities: Tensor
    """Their probabilities at the last position ``[n_logits]``."""
    prompt_tokens: list[str] = field(default_factory=list)
    """Decoded prompt tokens (empty when no tokenizer was given)."""
    logit_strings: list[str] = field(default_factory=list)
    """Decoded logit tokens (empty when no tokenizer was given)."""
    model_id: str = ""
    """Base model id."""
    model_revision: str | None = None
    """Base model revision or content tag."""
    scan: str = ""
    """Identifier of the transcoder set (circuit-tracer's and Neuronpedia's ``scan``)."""
    zero_first_position: bool = True
    """Position 0 (BOS, attention sink) has no feature nodes and a zero error node."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Timings, options, scores."""

    def __post_init__(self) -> None:
        n = self.n_nodes
        if tuple(self.adjacency.shape) != (n, n):
            raise Invalid(f"adjacency has shape {tuple(self.adjacency.shape)}, expected ({n}, {n})")
        if self.active_features.ndim != 2 or self.active_features.shape[1] != 3:
            raise Invalid("active_features must be [n_active 3] (layer, pos, feature)")
        if self.activation_values.shape[0] != self.active_features.shape[0]:
            raise Invalid("activation_values needs one value per active feature")
        if len(self.logit_tokens) != self.logit_probabilities.shape[0]:
            raise Invalid("logit_probabilities needs one value per logit token")

    # layout -------------------------------------------------------------------------------
    @property
    def n_pos(self) -> int:
        return len(self.input_ids)

    @property
    def n_features(self) -> int:
        return int(self.selected_features.shape[0])

    @property
    def n_logits(self) -> int:
        return len(self.logit_tokens)

    @property
    def error_start(self) -> int:
        return self.n_features

    @property
    def token_start(self) -> int:
        return self.n_features + self.n_layers * self.n_pos

    @property
    def logit_start(self) -> int:
        return self.token_start + self.n_pos

    @property
    def n_nodes(self) -> int:
        return self.logit_start + self.n_logits

    def error_index(self, layer: int, pos: int) -> int:
        return self.error_start + layer * self.n_pos + pos

    def feature_rows(self) -> Tensor:
        """(layer, pos, feature) of every feature node ``[n_features 3]``."""
        return self.active_features[self.selected_features]

    def feature_activations(self) -> Tensor:
        return self.activation_values[self.selected_features]

    def node(self, i: int) -> NodeRef:
        if i < 0 or i >= self.n_nodes:
            raise NotFound(f"node {i} is out of range 0..{self.n_nodes - 1}")
        if i < self.n_features:
            layer, pos, feat = (int(v) for v in self.active_features[self.selected_features[i]])
            return NodeRef("feature", layer, pos, feat)
        if i < self.token_start:
            layer, pos = divmod(i - self.error_start, self.n_pos)
            return NodeRef("error", layer, pos, -1)
        if i < self.logit_start:
            pos = i - self.token_start
            return NodeRef("token", -1, pos, self.input_ids[pos])
        return NodeRef("logit", self.n_layers, self.n_pos - 1, self.logit_tokens[i - self.logit_start])

    def feature_node_index(self, layer: int, pos: int, feature: int) -> int:
        """Node index of a selected feature; NotFound when it is not in the graph."""
        rows = self.feature_rows()
        hit = ((rows[:, 0] == layer) & (rows[:, 1] == pos) & (rows[:, 2] == feature)).nonzero()
        if not hit.numel():
            raise NotFound(f"feature {feature} at layer {layer}, position {pos} is not a node of this graph")
        return int(hit[0, 0])

    # persistence --------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids, "n_layers": self.n_layers, "logit_tokens": self.logit_tokens,
            "prompt_tokens": self.prompt_tokens, "logit_strings": self.logit_strings, "model_id": self.model_id,
            "model_revision": self.model_revision, "scan": self.scan,
            "zero_first_position": self.zero_first_position, "extra": self.extra,
        }

    def _tensors(self) -> dict[str, Tensor]:
        return {"active_features": self.active_features, "activation_values": self.activation_values,
                "selected_features": self.selected_features, "adjacency": self.adjacency,
                "logit_probabilities": self.logit_probabilities}

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON values (the workbench's own graph JSON)."""
        return {**self._meta(), **{k: v.tolist() for k, v in self._tensors().items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AttributionGraph":
        try:
            return cls(
                active_features=torch.tensor(d["active_features"], dtype=torch.long).reshape(-1, 3),
                activation_values=torch.tensor(d["activation_values"], dtype=torch.float32),
                selected_features=torch.tensor(d["selected_features"], dtype=torch.long),
                adjacency=torch.tensor(d["adjacency"], dtype=torch.float32),
                logit_probabilities=torch.tensor(d["logit_probabilities"], dtype=torch.float32),
                **{k: d[k] for k in ("input_ids", "n_layers", "logit_tokens")},
                **{k: d[k] for k in ("prompt_tokens", "logit_strings", "model_id", "model_revision", "scan",
                                     "zero_first_position", "extra") if k in d},
            )
        except KeyError as e:
            raise Invalid(f"graph JSON lacks {e.args[0]!r}") from None

    def save(self, folder: str | Path) -> Path:
        """``graph.json`` (metadata) + ``graph.safetensors`` (tensors), written atomically."""
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in self._tensors().items()}, str(tmp / GRAPH_TENSORS))
            (tmp / GRAPH_JSON).write_text(json.dumps(self._meta(), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "AttributionGraph":
        folder = Path(folder)
        if not (folder / GRAPH_JSON).is_file() or not (folder / GRAPH_TENSORS).is_file():
            raise NotFound(f"{folder} is not a saved graph: it needs {GRAPH_JSON} and {GRAPH_TENSORS}")
        meta = json.loads((folder / GRAPH_JSON).read_text())
        tensors = load_file(str(folder / GRAPH_TENSORS))
        try:
            return cls(**meta, **tensors)
        except TypeError as e:
            raise Invalid(f"{folder} is not a graph saved by this version: {e}") from None
