import type { CircuitEdge, CircuitNode } from "../../api/types";

const base = { activation: null, probability: null, label: null, sae_id: null, cumulative: 0.5 };

/** A 3-token prompt, 2 layers: tokens, two features at position 2 (layer 0), one at layer 1, an error, two logits. */
export const circuitNodes: CircuitNode[] = [
  { ...base, node: 10, kind: "token", layer: -1, pos: 0, feature: 1, token: "<s>", influence: 0.1 },
  { ...base, node: 11, kind: "token", layer: -1, pos: 1, feature: 7, token: " the", influence: 0.2 },
  { ...base, node: 12, kind: "token", layer: -1, pos: 2, feature: 9, token: " cat", influence: 0.4 },
  { ...base, node: 0, kind: "feature", layer: 0, pos: 2, feature: 5, token: " cat", activation: 2.5, influence: 0.3, label: "cats", sae_id: "sae_l0" },
  { ...base, node: 1, kind: "feature", layer: 0, pos: 2, feature: 8, token: " cat", activation: 1.0, influence: 0.1, sae_id: "sae_l0" },
  { ...base, node: 2, kind: "feature", layer: 1, pos: 2, feature: 3, token: " cat", activation: 4.0, influence: 0.5, sae_id: "sae_l1" },
  { ...base, node: 6, kind: "error", layer: 1, pos: 1, token: " the", influence: 0.05 },
  { ...base, node: 13, kind: "logit", layer: 2, pos: 2, feature: 42, token: " sat", probability: 0.6, influence: 0 },
  { ...base, node: 14, kind: "logit", layer: 2, pos: 2, feature: 43, token: " ran", probability: 0.3, influence: 0 },
];

export const circuitEdges: CircuitEdge[] = [
  { source: 12, target: 0, weight: 1.5 },
  { source: 0, target: 2, weight: 2.0 },
  { source: 1, target: 2, weight: -0.5 },
  { source: 2, target: 13, weight: 3.0 },
  { source: 6, target: 14, weight: -0.2 },
  { source: 99, target: 13, weight: 1.0 }, // a source outside this view: not drawn
];
