export const ctx = { tokens: ["The", " cat", " sat", "\n"], activations: [0, 2, 4, 0] };
