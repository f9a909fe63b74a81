import { useMemo } from "react";
import { Link } from "react-router";
import type { MemberResult } from "../../api/types";
import { ParetoScatter, type ScatterPoint } from "../../charts/ParetoScatter/ParetoScatter";
import { fmt } from "../../charts/useWidth";
import { memberLabel } from "./trainData";

/**
 * The SAEs of a finished run with their final held-out metrics, and per hook an L0 vs FVU scatter (one point
 * per SAE, the Pareto frontier marked). Nothing is averaged across SAEs.
 */
export function MembersTable({ members }: { members: MemberResult[] }) {
  const hooks = useMemo(() => {
    const out = new Map<string, ScatterPoint[]>();
    for (const m of members) {
      const pts = out.get(m.hook_name) ?? [];
      pts.push({ id: m.index, label: m.label ?? memberLabel(m), x: m.l0, y: m.held_out_fvu });
      out.set(m.hook_name, pts);
    }
    return out;
  }, [members]);
  return (
    <div data-testid="members">
      <table className="table" aria-label="SAEs of the run">
        <thead>
          <tr>
            <th scope="col">#</th><th scope="col">Hook</th><th scope="col">SAE</th><th scope="col">lr</th>
            <th scope="col">FVU</th><th scope="col">L0</th><th scope="col">Dead</th><th scope="col">CE-loss recovered</th>
            <th scope="col">Features</th>
          </tr>
        </thead>
        <tbody>
          {members.map((m) => (
            <tr key={m.index} data-testid="member-row" data-member={m.index}>
              <td>{m.index}</td>
              <td className="mono small">{m.hook_name}</td>
              <td>{memberLabel(m)}</td>
              <td>{m.lr != null ? m.lr.toExponential(1) : "—"}</td>
              <td data-col="fvu">{fmt(m.held_out_fvu)}</td>
              <td data-col="l0">{fmt(m.l0)}</td>
              <td data-col="dead">{fmt(m.held_out_dead_fraction ?? m.dead_fraction)}</td>
              <td data-col="ce">{fmt(m.ce_loss_recovered)}</td>
              <td>{m.sae_id ? <Link to={`/features/${encodeURIComponent(m.sae_id)}`}>open →</Link> : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="chart-grid">
        {[...hooks.entries()].map(([hook, pts]) => (
          <div key={hook} data-testid="pareto" data-hook={hook}>
            <ParetoScatter title={`L0 vs FVU · ${hook}`} points={pts} />
          </div>
        ))}
      </div>
    </div>
  );
}
