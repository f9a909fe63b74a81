import { useMemo } from "react";
import * as d3 from "d3";
import { Link } from "react-router";
import type { ContrastFeature } from "../../api/types";
import { fmt } from "../../charts/useWidth";
import { TokenChips } from "../../components/TokenChips";

/** Ranked features with a diverging bar of the mean difference and a checkbox each. */
export function ContrastResults({ saeId, features, selected, onToggle }: {
  saeId: string;
  features: ContrastFeature[];
  selected: ReadonlySet<number>;
  onToggle: (index: number, on: boolean) => void;
}) {
  const x = useMemo(() => {
    const m = d3.max(features, (f) => Math.abs(f.mean_diff)) ?? 1;
    return d3.scaleLinear().domain([-(m || 1), m || 1]).range([0, 160]);
  }, [features]);
  if (features.length === 0) return <p className="muted">No separating features found.</p>;
  return (
    <table className="table" aria-label="Features ranked by separation">
      <thead>
        <tr>
          <th scope="col">Use</th><th scope="col">#</th><th scope="col">Label</th><th scope="col">Mean diff</th>
          <th scope="col">Effect size</th><th scope="col">Fires (+ / −)</th><th scope="col">Top tokens</th>
        </tr>
      </thead>
      <tbody>
        {features.map((f) => (
          <tr key={f.index} data-testid="contrast-row">
            <td>
              <input type="checkbox" aria-label={`Select feature ${f.index}`} checked={selected.has(f.index)}
                onChange={(e) => onToggle(f.index, e.target.checked)} />
            </td>
            <td><Link to={`/features/${encodeURIComponent(saeId)}/${f.index}`}>{f.index}</Link></td>
            <td>{f.label ?? <span className="muted">unlabelled</span>}</td>
            <td>
              <svg width={160} height={14} role="img" aria-label={`mean difference ${fmt(f.mean_diff)}`}>
                <rect x={Math.min(x(0), x(f.mean_diff))} y={2} height={10} width={Math.abs(x(f.mean_diff) - x(0))}
                  className={f.mean_diff >= 0 ? "bar-pos" : "bar-neg"} />
                <line x1={x(0)} x2={x(0)} y1={0} y2={14} className="zero" />
              </svg>{" "}
              {fmt(f.mean_diff)}
            </td>
            <td title={`mean + ${fmt(f.mean_positive)} / mean − ${fmt(f.mean_negative)}`}>{fmt(f.effect_size)}</td>
            <td>{fmt(f.positive_rate, 2)} / {fmt(f.negative_rate, 2)}</td>
            <td className="small"><TokenChips tokens={f.top_tokens} limit={5} /></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
