import type { TrainingRun } from "../../api/types";
import { fmt } from "../../charts/useWidth";

/** Table of past and current runs; choosing one shows it above. */
export function RunHistory({ runs, selected, onSelect }: { runs: TrainingRun[]; selected: string | null; onSelect: (id: string) => void }) {
  if (runs.length === 0) return <p>No training runs yet.</p>;
  return (
    <table className="table" aria-label="Training runs">
      <thead>
        <tr>
          <th scope="col">Run</th><th scope="col">Status</th><th scope="col">Layer / hook</th><th scope="col">d_sae</th>
          <th scope="col">FVU</th><th scope="col">L0</th><th scope="col">Dead</th><th scope="col">Started</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.run_id} className={r.run_id === selected ? "selected" : undefined} data-testid="run-row">
            <td>
              <button type="button" className="link mono" onClick={() => onSelect(r.run_id)} aria-pressed={r.run_id === selected}>
                {r.run_id}
              </button>
            </td>
            <td><span className={`badge badge-${r.status}`}>{r.status}</span></td>
            <td>{r.config.layer} / {r.config.hook}</td>
            <td>{r.config.d_sae}</td>
            <td>{fmt(r.metrics?.fvu)}</td>
            <td>{fmt(r.metrics?.l0)}</td>
            <td>{fmt(r.metrics?.dead_fraction)}</td>
            <td>{r.created_at ? new Date(r.created_at).toLocaleString() : "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
