import { useMemo, useState } from "react";
import type { BehaviourCandidateRow } from "../../api/types";
import { drop, editSummary, num } from "./format";

export type CandidateSort = "index" | "objective" | "held_out";

/** Rows in the chosen order: evaluation order; objective (within budget first, then lower); or held-out target after. */
export function sortCandidates(rows: BehaviourCandidateRow[], sort: CandidateSort): BehaviourCandidateRow[] {
  const out = [...rows];
  if (sort === "index") out.sort((a, b) => a.index - b.index);
  else if (sort === "objective") out.sort((a, b) => Number(b.feasible) - Number(a.feasible) || a.objective - b.objective || a.index - b.index);
  else out.sort((a, b) => a.held_out.target_after - b.held_out.target_after || a.index - b.index);
  return out;
}

/**
 * Every evaluated candidate of a job: its edits, the target probability on the positives before → after (search
 * and held-out splits), the damage on the negatives (KL, largest target change, budget use), whether it is
 * within budget and on the Pareto front. The best candidate is highlighted; any row can become patches.
 */
export function CandidateTable({ rows, best, onMakePatch, making }: {
  rows: BehaviourCandidateRow[];
  best: number | null;
  onMakePatch: (index: number) => void;
  making: number | null;
}) {
  const [sort, setSort] = useState<CandidateSort>("index");
  const [feasibleOnly, setFeasibleOnly] = useState(false);
  const shown = useMemo(() => sortCandidates(feasibleOnly ? rows.filter((r) => r.feasible) : rows, sort), [rows, sort, feasibleOnly]);
  return (
    <section className="card" aria-label="Candidates">
      <div className="toolbar row">
        <h2>Candidates <span className="muted small" data-testid="candidate-count">{rows.length}</span></h2>
        <label htmlFor="bh-sort">Sort</label>
        <select id="bh-sort" value={sort} onChange={(e) => setSort(e.target.value as CandidateSort)}>
          <option value="index">evaluation order</option>
          <option value="objective">objective (within budget first)</option>
          <option value="held_out">held-out target after</option>
        </select>
        <label className="check"><input type="checkbox" checked={feasibleOnly} onChange={(e) => setFeasibleOnly(e.target.checked)} /> within budget only</label>
      </div>
      {rows.length === 0 ? (
        <p className="muted">No candidate evaluated yet.</p>
      ) : (
        <div style={{ overflowX: "auto", maxHeight: "28rem" }}>
          <table className="table small" aria-label="Evaluated candidates">
            <thead>
              <tr>
                <th>#</th>
                <th>Stage</th>
                <th>Edits</th>
                <th title="Features over all edits">Features</th>
                <th title="Mean target probability on the positives (search split), original → patched">P(target) positives</th>
                <th title="The same on the held-out positives">held-out</th>
                <th title="Mean / largest KL(original ‖ patched) on the negatives (search split), nats">KL negatives</th>
                <th title="Largest |Δ target probability| on one negative (search split)">max Δp neg.</th>
                <th title="Share of the budget spent (search split; ≤ 1 is within budget)">Budget use</th>
                <th title="target ratio + 0.01 × budget use; lower is better">Objective</th>
                <th>Pareto</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {shown.map((r) => {
                const isBest = r.index === best;
                const nFeatures = r.edits.reduce((n, e) => n + e.features.length, 0);
                return (
                  <tr key={r.index} data-testid="candidate-row" data-index={r.index} data-best={isBest ? "true" : undefined}
                    className={isBest ? "selected" : undefined} aria-current={isBest ? "true" : undefined}>
                    <td>{r.index}{isBest && <strong className="badge" title="The best within-budget candidate"> best</strong>}</td>
                    <td>{r.stage}</td>
                    <td className="mono" title={r.edits.map((e) => `${e.sae_id}: ${e.features.join(", ")}`).join("\n")}>
                      {r.edits.map(editSummary).join(" + ")}
                    </td>
                    <td className="num" data-testid="candidate-features">{nFeatures}</td>
                    <td className="num">{num(r.search.target_before)} → {num(r.search.target_after)} <span className="muted">{drop(r.search.target_before, r.search.target_after)}</span></td>
                    <td className="num">{num(r.held_out.target_before)} → {num(r.held_out.target_after)}</td>
                    <td className="num">{num(r.search.kl_mean)} / {num(r.search.kl_max)}</td>
                    <td className="num">{num(r.search.max_target_change)}</td>
                    <td className={r.feasible ? "num" : "num bad"}>{num(r.budget_use)}{r.feasible ? "" : " over"}</td>
                    <td className="num">{num(r.objective)}</td>
                    <td>{r.pareto == null ? "…" : r.pareto ? "yes" : ""}</td>
                    <td>
                      <button type="button" onClick={() => onMakePatch(r.index)} disabled={making != null}
                        aria-label={`Make patch from candidate ${r.index}`}>
                        {making === r.index ? "Making…" : "Make patch"}
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
