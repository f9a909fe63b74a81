import type { TrainingRun } from "../../api/types";
import { hooksLabel } from "./trainData";

/** Table of past and current runs; choosing one shows it above. */
export function RunHistory({ runs, selected, onSelect }: { runs: TrainingRun[]; selected: string | null; onSelect: (id: string) => void }) {
  if (runs.length === 0) return <p>No training runs yet.</p>;
  return (
    <table className="table" aria-label="Training runs">
      <thead>
        <tr>
          <th scope="col">Run</th><th scope="col">Status</th><th scope="col">Layers · hook</th><th scope="col">Architecture</th>
          <th scope="col">Tokens</th><th scope="col">SAEs</th><th scope="col">Started</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.id} className={r.id === selected ? "selected" : undefined} data-testid="run-row">
            <td>
              <button type="button" className="link mono" onClick={() => onSelect(r.id)} aria-pressed={r.id === selected}>
                {r.id}
              </button>
            </td>
            <td><span className={`badge badge-${r.status}`}>{r.status}</span></td>
            <td>{hooksLabel(r.hook_names)}</td>
            <td>{r.architecture}</td>
            <td>{r.tokens_seen.toLocaleString()} / {r.total_tokens.toLocaleString()}</td>
            <td>{r.sae_ids?.length ?? 0}</td>
            <td>{new Date(r.created_at * 1000).toLocaleString()}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
