import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { api } from "../../api/endpoints";
import { ApiError, errorText } from "../../api/errors";
import { useCancelUnderstandingJob, useStartEvals } from "../../api/mutations";
import { queryKeys } from "../../api/queryKeys";
import { useEvals, useEvalsJob, useSaes } from "../../api/queries";
import type { EvalResult } from "../../api/types";
import { ErrorMessage, ProgressBar } from "../../components/Status";

const EVALS = [
  ["density", "Density"],
  ["sparse_probing", "Sparse probing"],
  ["absorption", "Absorption"],
] as const;
type EvalName = (typeof EVALS)[number][0];

/** What each headline number means (and which way is better). */
export function metricHelp(key: string): string {
  const k = /^k(\d+)_probe_accuracy$/.exec(key);
  if (k) return `Balanced accuracy of a probe on the ${k[1]} best SAE latent${k[1] === "1" ? "" : "s"} per task: close to the raw probe means the concept lives in few latents (higher is better).`;
  switch (key) {
    case "absorption_fraction": return "Share of a first-letter direction taken over by other latents on words where the letter's main latents stay silent (feature absorption; lower is better).";
    case "full_absorption": return "Share of words where a single other latent fully carries the first-letter direction instead of the main latents (lower is better).";
    case "main_latents_per_letter": return "Latents the first-letter probe needs per letter (feature splitting; near 1 is cleaner).";
    case "raw_probe_accuracy": return "Balanced accuracy of a probe on the raw activations at the SAE's hook: the ceiling for the sparse probes.";
    case "dead_fraction": return "Latents that never fired on the density tokens (lower is better).";
    case "dense_fraction": return "Latents firing on more than 10% of tokens (usually uninterpretable; lower is better).";
    default: return "";
  }
}

const fmt = (v: number | string | null | undefined) =>
  v == null ? "–" : typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(3)) : v;

/** The density histogram of the latest evaluation: latents per log10 firing-rate bin. */
function DensityBars({ result }: { result: EvalResult }) {
  const d = result.result.density as { counts: number[]; log10_density_edges: number[] } | null;
  if (!d) return null;
  const max = Math.max(1, ...d.counts);
  const w = 14;
  return (
    <figure className="small" style={{ margin: "0.5rem 0" }}>
      <svg width={d.counts.length * w} height={60} role="img" aria-label="Latents per log10 density bin" data-testid="density-bars">
        {d.counts.map((c, i) => (
          <rect key={i} x={i * w + 1} y={60 - (c / max) * 58} width={w - 2} height={(c / max) * 58} fill="#6b8fd6">
            <title>{`${c} latents with log10 density in [${d.log10_density_edges[i]}, ${d.log10_density_edges[i + 1]})`}</title>
          </rect>
        ))}
      </svg>
      <figcaption className="muted">Latents per log10 firing rate ({d.log10_density_edges[0]} … {d.log10_density_edges[d.log10_density_edges.length - 1]}; the first bin holds latents that never fired)</figcaption>
    </figure>
  );
}

/** Side-by-side headline numbers of this SAE and others the user picks (each must have been evaluated). */
function Compare({ saeId }: { saeId: string }) {
  const saes = useSaes();
  const [others, setOthers] = useState<string[]>([]);
  const ids = [saeId, ...others.filter((o) => o !== saeId)];
  const cmp = useQuery({ queryKey: queryKeys.evalsCompare(ids), queryFn: () => api.compareEvals(ids), enabled: others.length > 0, retry: false });
  const rows = cmp.data?.rows ?? [];
  const keys = rows.length ? Object.keys(rows[0]).filter((k) => k !== "sae_id") : [];
  return (
    <details className="small">
      <summary>Compare with other SAEs</summary>
      <select multiple aria-label="SAEs to compare" value={others} onChange={(e) => setOthers(Array.from(e.target.selectedOptions, (o) => o.value))}>
        {(saes.data ?? []).filter((s) => s.id !== saeId).map((s) => (
          <option key={s.id} value={s.id}>{s.hook_name} · {s.d_sae} ({s.id})</option>
        ))}
      </select>
      <ErrorMessage error={errorText(cmp.error)} />
      {rows.length > 0 && (
        <table data-testid="evals-compare">
          <thead><tr><th>Metric</th>{rows.map((r) => <th key={String(r.sae_id)}>{String(r.sae_id)}</th>)}</tr></thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k}><td title={metricHelp(k)}>{k}</td>{rows.map((r) => <td key={String(r.sae_id)}>{fmt(r[k])}</td>)}</tr>
            ))}
          </tbody>
        </table>
      )}
    </details>
  );
}

/**
 * SAE evaluations on the loaded model (POST /api/saes/{id}/evals runs them as a job): feature absorption on the
 * first-letter task, k-sparse probing on token tasks from the corpus, and the activation-density histogram.
 * Shows the latest result's headline numbers with what each means, and a side-by-side table with other SAEs.
 */
export function EvalsPanel({ saeId }: { saeId: string }) {
  const job = useEvalsJob(saeId);
  const res = useEvals(saeId);
  const start = useStartEvals(saeId);
  const cancel = useCancelUnderstandingJob(saeId, "evals");
  const [which, setWhich] = useState<Set<EvalName>>(new Set(EVALS.map(([k]) => k)));
  const j = job.data;
  const running = j?.status === "running" || j?.status === "queued";
  const notYet = res.error instanceof ApiError && (res.error.status === 404 || res.error.status === 409);
  const r = res.data;
  const toggle = (k: EvalName) => {
    const next = new Set(which);
    if (next.has(k)) next.delete(k);
    else next.add(k);
    setWhich(next);
  };
  return (
    <div className="card evals" data-testid="evals-panel" data-status={j?.status ?? "none"}>
      <div className="row">
        <strong>Evaluations:</strong>{" "}
        <span className={`badge badge-${j?.status ?? "none"}`} data-testid="evals-status">{j?.status ?? (r ? "done" : "not run")}</span>
        {!running && (
          <>
            {EVALS.map(([k, name]) => (
              <label key={k} className="small">
                <input type="checkbox" checked={which.has(k)} onChange={() => toggle(k)} /> {name}
              </label>
            ))}
            <button type="button" disabled={start.isPending || which.size === 0}
              onClick={() => start.mutate({ which: EVALS.map(([k]) => k).filter((k) => which.has(k)) })}>
              {r ? "Re-run evaluations" : "Run evaluations"}
            </button>
          </>
        )}
        {running && (
          <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending}
            title="Stop at the next stage; the previous evaluation stays">Cancel</button>
        )}
      </div>
      {running && <ProgressBar value={j && j.total > 0 ? j.done / j.total : null} label="Evaluation progress" />}
      {j?.status === "failed" && j.error && <ErrorMessage error={`Evaluation failed: ${j.error}`} />}
      {notYet && !running && <p className="muted small">Not evaluated yet. Absorption and probing run the loaded model (minutes on a CPU).</p>}
      {!notYet && <ErrorMessage error={errorText(res.error)} />}
      {j?.status === "cancelled" && <p className="muted small" data-testid="evals-cancelled">Cancelled: {r ? "the result shown is the previous evaluation" : "nothing was saved"}.</p>}
      <ErrorMessage error={errorText(start.error ?? cancel.error)} />
      {r && (
        <>
          <table data-testid="evals-summary">
            <thead><tr><th>Metric</th><th>Value</th><th>Meaning</th></tr></thead>
            <tbody>
              {Object.entries(r.summary).map(([k, v]) => (
                <tr key={k} data-testid="evals-row"><td>{k}</td><td>{fmt(v)}</td><td className="muted small">{metricHelp(k)}</td></tr>
              ))}
            </tbody>
          </table>
          <DensityBars result={r} />
          <Compare saeId={saeId} />
        </>
      )}
    </div>
  );
}
