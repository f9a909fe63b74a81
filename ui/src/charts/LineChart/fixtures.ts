import type { Series } from "./LineChart";

/** A deterministic decaying curve, for tests. */
export const lossSeries: Series = {
  name: "loss",
  points: Array.from({ length: 20 }, (_, i) => ({ x: i * 10, y: 1 / (1 + i) })),
};

export const withGaps: Series = {
  name: "fvu",
  points: [
    { x: 0, y: 0.9 },
    { x: 1, y: null },
    { x: 2, y: 0.5 },
  ],
};
