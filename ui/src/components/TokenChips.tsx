import { showToken } from "../tokens/display";

/** Tokens as small chips, each shown by the one token rule (tokens/display.ts); never an empty chip. */
export function TokenChips({ tokens, limit = 6, label }: { tokens: string[]; limit?: number; label?: string }) {
  return (
    <span className="token-chips" aria-label={label}>
      {tokens.slice(0, limit).map((t, i) => (
        <span key={i} className="chip mono" title={JSON.stringify(t)} data-testid="token-chip">{showToken(t)}</span>
      ))}
    </span>
  );
}
