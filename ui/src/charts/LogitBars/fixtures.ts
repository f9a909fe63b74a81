import type { TokenProb } from "../../api/types";

export const original: TokenProb[] = [
  { token: " Paris", id: 1, prob: 0.6, logit: 5 },
  { token: " Lyon", id: 2, prob: 0.2, logit: 3.9 },
];
export const patched: TokenProb[] = [
  { token: " Lyon", id: 2, prob: 0.5, logit: 4.8 },
  { token: " Rome", id: 3, prob: 0.3, logit: 4.2 },
];
