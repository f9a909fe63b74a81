import { useState } from "react";
import type { CircuitNode } from "../../api/types";
import type { Supernode } from "../../charts/CircuitGraph/CircuitGraph";
import { nodeTitle } from "../../charts/CircuitGraph/layout";

/** Pinned nodes, grouping them into a labelled supernode, and the supernodes with their intervention. */
export function SupernodePanel({ pinned, supernodes, busy, onGroup, onUngroup, onIntervene }: {
  pinned: CircuitNode[];
  supernodes: Supernode[];
  busy: boolean;
  onGroup: (label: string) => void;
  onUngroup: (id: string) => void;
  onIntervene: (s: Supernode, factor: number) => void;
}) {
  const [label, setLabel] = useState("");
  const features = pinned.filter((n) => n.kind === "feature");
  return (
    <section className="card" aria-labelledby="pins-h">
      <h2 id="pins-h">Pinned <span className="muted small">({pinned.length})</span></h2>
      {pinned.length === 0 ? (
        <p className="muted small">Pin nodes (the Pin button or “p” on a focused node) to group them.</p>
      ) : (
        <ul className="small" aria-label="Pinned nodes">
          {pinned.map((n) => <li key={n.node}>{nodeTitle(n)}</li>)}
        </ul>
      )}
      <form className="row" onSubmit={(e) => {
        e.preventDefault();
        onGroup(label.trim());
        setLabel("");
      }}>
        <label htmlFor="sn-label">Supernode label</label>
        <input id="sn-label" value={label} onChange={(e) => setLabel(e.target.value)} required />
        <button type="submit" disabled={features.length < 2 || features.length !== pinned.length || !label.trim()}>
          Group pinned
        </button>
      </form>
      {features.length !== pinned.length && <p className="muted small">Supernodes group feature nodes only.</p>}
      {supernodes.length > 0 && (
        <ul aria-label="Supernodes">
          {supernodes.map((s) => (
            <li key={s.id} data-testid="supernode-row">
              <strong>{s.label}</strong> <span className="muted small">({s.members.length} features)</span>
              <div className="row">
                <button type="button" disabled={busy} onClick={() => onIntervene(s, 0)}>Ablate together</button>
                <button type="button" disabled={busy} onClick={() => onIntervene(s, 2)}>Double together</button>
                <button type="button" className="link" onClick={() => onUngroup(s.id)}>Ungroup</button>
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
