import { Link } from "react-router";
import type { BehaviourPromptEffect, BehaviourReport } from "../../api/types";
import { showToken } from "../../tokens/display";
import { drop, num } from "./format";

function Effects({ label, rows }: { label: string; rows: BehaviourPromptEffect[] }) {
  if (rows.length === 0) return null;
  return (
    <details>
      <summary>{label} ({rows.length})</summary>
      <table className="table small" aria-label={label}>
        <thead><tr><th>Prompt</th><th>P(target) before</th><th>after</th><th>KL</th></tr></thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={i}><td title={r.text}>{r.text}</td><td className="num">{num(r.target_before)}</td>
              <td className="num">{num(r.target_after)}</td><td className="num">{num(r.kl)}</td></tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

/** A finished job's report: the target's drop and the side effects measured again from the patches made, the
 * chosen edit (features with labels), the patches and how to export them. */
export function ReportView({ report }: { report: BehaviourReport }) {
  const h = report.held_out;
  const s = report.search;
  return (
    <section className="card" aria-label="Report">
      <h2>Report</h2>
      {report.message && <p className="notice" data-testid="report-message">{report.message}</p>}
      <p data-testid="report-targets">
        Target{report.target_tokens.length === 1 ? "" : "s"}: {report.target_tokens.map((t, i) => (
          <code key={i} className="tok" title={`id ${report.target_ids[i]}`}>{showToken(t)}</code>
        ))}
        {report.target_notes.length > 0 && <span className="muted small"> ({report.target_notes.join("; ")})</span>}
      </p>
      {h && (
        <dl className="kv">
          <dt>Target probability, held-out positives</dt>
          <dd data-testid="report-target">{num(h.target_before)} → {num(h.target_after)} ({drop(h.target_before, h.target_after)}; ratio {num(h.target_ratio)})</dd>
          <dt>Side effects, held-out negatives</dt>
          <dd data-testid="report-side">KL mean {num(h.kl_mean)}, max {num(h.kl_max)} nats; largest target change {num(h.max_target_change)}</dd>
          {s && (
            <>
              <dt>Search split</dt>
              <dd>target {num(s.target_before)} → {num(s.target_after)}; KL mean {num(s.kl_mean)}; largest target change {num(s.max_target_change)}</dd>
            </>
          )}
          <dt>Within budget</dt>
          <dd data-testid="report-feasible">search split: {report.feasible ? "yes" : "no"}; held-out: {report.held_out_feasible ? "yes" : "no"}</dd>
          <dt>Split sizes (held-out)</dt>
          <dd>{h.n_positive} positive, {h.n_negative} negative</dd>
        </dl>
      )}
      <p className="muted small">
        {report.n_evaluated} candidates evaluated{report.exhausted ? " (the evaluation budget ran out before the search finished)" : ""} in{" "}
        {report.seconds.toFixed(1)} s{report.best_candidate != null ? `; chosen: candidate ${report.best_candidate}` : ""}.
      </p>
      {report.edits.length > 0 && (
        <>
          <h3>Chosen edit</h3>
          <table className="table small" aria-label="Chosen edit">
            <thead><tr><th>Layer</th><th>Hook</th><th>Mode</th><th>Strength</th><th>Rank</th><th>Features</th><th>Patch</th></tr></thead>
            <tbody>
              {report.edits.map((e) => (
                <tr key={e.patch_id} data-testid="report-edit">
                  <td>{e.layer}</td>
                  <td className="mono">{e.hook_name}</td>
                  <td>{e.mode}</td>
                  <td className="num">{Number(e.strength.toPrecision(4))}</td>
                  <td className="num">{e.rank}</td>
                  <td style={{ whiteSpace: "normal" }}>
                    {e.features.map((f) => (
                      <Link key={f.index} className="chip" to={`/features/${encodeURIComponent(e.sae_id)}/${f.index}`}
                        title={[f.top_tokens.length ? `fires on ${f.top_tokens.map(showToken).join(" ")}` : "",
                          f.effect_size != null ? `effect size ${num(f.effect_size)}` : ""].filter(Boolean).join("; ")}>
                        #{f.index}{f.label ? ` ${f.label}` : ""}
                      </Link>
                    ))}
                  </td>
                  <td className="mono">{e.patch_id}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {report.patch_ids.length > 0 && (
        <p>
          {report.patch_ids.length} patch{report.patch_ids.length === 1 ? "" : "es"} made (edit set <code>{report.edit_set}</code>):{" "}
          <Link to="/patches">open the Patch console</Link>.
        </p>
      )}
      <p className="muted small" data-testid="report-export-note">{report.export_note}</p>
      {report.notes.length > 0 && <ul className="small">{report.notes.map((n, i) => <li key={i}>{n}</li>)}</ul>}
      <Effects label="Held-out positives" rows={report.held_out_positive} />
      <Effects label="Held-out negatives" rows={report.held_out_negative} />
    </section>
  );
}
