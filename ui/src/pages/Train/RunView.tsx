import { useMemo } from "react";
import { Link } from "react-router";
import type { MetricPoint, TrainingProgress, TrainingRun } from "../../api/types";
import { LineChart, type Series } from "../../charts/LineChart/LineChart";
import { fmt } from "../../charts/useWidth";
import { ErrorMessage, ProgressBar, formatDuration } from "../../components/Status";

const METRICS = [
  ["loss", "Loss", true],
  ["fvu", "FVU", false],
  ["l0", "L0", false],
  ["dead_fraction", "Dead fraction", false],
] as const;

/** One run: progress bar with ETA and tokens/s, cancel/resume, and the live metric charts. */
export function RunView({
  run, progress, history, onCancel, onResume, busy, error,
}: {
  run: TrainingRun;
  progress: TrainingProgress | null | undefined;
  history: MetricPoint[];
  onCancel: () => void;
  onResume: () => void;
  busy: boolean;
  error: string | null;
}) {
  const series = useMemo(
    () =>
      Object.fromEntries(
        METRICS.map(([key]) => [key, { name: key, points: history.map((p) => ({ x: p.step, y: p[key] ?? null })) } as Series]),
      ),
    [history],
  );
  const frac = progress && progress.total_tokens > 0 ? progress.tokens_seen / progress.total_tokens : null;
  const active = run.status === "running" || run.status === "queued";
  const resumable = run.status === "interrupted" || run.status === "failed" || run.status === "cancelled";

  return (
    <section className="card" aria-labelledby="run-h" data-testid="run-view" data-status={run.status}>
      <h2 id="run-h">
        Run <span className="mono">{run.run_id}</span> <span className={`badge badge-${run.status}`}>{run.status}</span>
      </h2>
      <p className="muted small">
        layer {run.config.layer} · {run.config.hook} · {run.config.architecture} · d_sae {run.config.d_sae}
        {run.config.k ? ` · k ${run.config.k}` : ""} · {run.config.n_tokens.toLocaleString()} tokens
      </p>
      <ProgressBar value={run.status === "completed" ? 1 : frac} label="Training progress" />
      <p className="stats" data-testid="run-stats">
        <span>step {progress?.step ?? "—"}{progress?.total_steps ? ` / ${progress.total_steps}` : ""}</span>
        <span>{progress ? `${progress.tokens_seen.toLocaleString()} / ${progress.total_tokens.toLocaleString()} tokens` : ""}</span>
        <span>{fmt(progress?.tokens_per_s, 4)} tokens/s</span>
        <span>ETA {active ? formatDuration(progress?.eta_s) : "—"}</span>
      </p>
      <div className="row">
        {active && <button type="button" onClick={onCancel} disabled={busy}>Cancel run</button>}
        {resumable && <button type="button" onClick={onResume} disabled={busy}>Resume run</button>}
        {run.sae_id && <Link to={`/features/${encodeURIComponent(run.sae_id)}`}>Open SAE features →</Link>}
      </div>
      {run.error && <ErrorMessage error={`Run failed: ${run.error}`} />}
      <ErrorMessage error={error} />
      <div className="chart-grid" data-testid="train-charts">
        {METRICS.map(([key, title, logY]) => (
          <LineChart key={key} title={title} series={[series[key]]} logY={logY} />
        ))}
      </div>
      {run.metrics?.ce_loss_recovered != null && (
        <p>CE-loss recovered: <strong>{fmt(run.metrics.ce_loss_recovered)}</strong></p>
      )}
    </section>
  );
}
