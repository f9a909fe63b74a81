export const bins = { edges: [0, 1, 2, 3, 4], counts: [10, 5, 0, 2] };
