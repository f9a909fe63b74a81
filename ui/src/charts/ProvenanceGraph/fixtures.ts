import type { ProvEdge, ProvNode } from "../../api/types";

export const nodes: ProvNode[] = [
  { id: "L2/7", layer: 2, feature: 7, label: "target", kind: "target", activation: 3 },
  { id: "L1/3", layer: 1, feature: 3, kind: "feature", label: "a", activation: 2 },
  { id: "L1/4", layer: 1, feature: 4, kind: "feature", label: "b", activation: 1 },
  { id: "L0/1", layer: 0, feature: 1, kind: "feature", label: null, activation: 1 },
  { id: "logit/ the", layer: 3, feature: 0, label: " the", kind: "logit" },
];
export const edges: ProvEdge[] = [
  { source: "L1/3", target: "L2/7", weight: 0.9 },
  { source: "L1/4", target: "L2/7", weight: -0.1 },
  { source: "L0/1", target: "L1/3", weight: 0.5 },
  { source: "L2/7", target: "logit/ the", weight: 0.3 },
];
