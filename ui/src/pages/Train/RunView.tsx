import { useMemo } from "react";
import { Link } from "react-router";
import type { TrainingProgress, TrainingRun, TrainingRunDetail } from "../../api/types";
import { LineChart, type Series } from "../../charts/LineChart/LineChart";
import { fmt } from "../../charts/useWidth";
import { ErrorMessage, ProgressBar, formatDuration } from "../../components/Status";
import { hooksLabel, type ChartPoint } from "./trainData";

const METRICS = [
  ["mse", "Loss (MSE)", true],
  ["fvu", "FVU", false],
  ["l0", "L0", false],
  ["dead_fraction", "Dead fraction", false],
] as const;

/** One run: progress bar with ETA and tokens/s, cancel/resume, and the live metric charts. */
export function RunView({
  run, progress, history, onCancel, onResume, busy, error,
}: {
  run: TrainingRun | TrainingRunDetail;
  progress: TrainingProgress;
  history: ChartPoint[];
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
  const frac = progress.total_tokens > 0 ? progress.tokens / progress.total_tokens : null;
  const active = run.status === "running" || run.status === "queued";
  const resumable = run.status === "interrupted" || run.status === "failed" || run.status === "cancelled";
  const last = history.length ? history[history.length - 1] : null;
  const final = "metrics" in run && run.metrics ? run.metrics : null;
  const config = "config" in run ? run.config : null;
  return (
    <section className="card" aria-labelledby="run-h" data-testid="run-view" data-status={run.status}>
      <h2 id="run-h">
        Run <span className="mono">{run.id}</span> <span className={`badge badge-${run.status}`}>{run.status}</span>
      </h2>
      <p className="muted small">
        layers {hooksLabel(run.hook_names)} · {run.architecture}
        {config ? ` · d_sae ${String(config.d_sae)}` : ""}
        {config && run.architecture !== "standard" ? ` · k ${String(config.k)}` : ""} · {run.total_tokens.toLocaleString()} tokens
      </p>
      <ProgressBar value={run.status === "done" ? 1 : frac} label="Training progress" />
      <p className="stats" data-testid="run-stats">
        <span>step {progress.step}</span>
        <span>{`${progress.tokens.toLocaleString()} / ${progress.total_tokens.toLocaleString()} tokens`}</span>
        <span>{fmt(progress.tokens_per_s, 4)} tokens/s</span>
        <span>ETA {active ? formatDuration(progress.eta_s) : "—"}</span>
        {active && progress.phase && <span>{progress.phase}</span>}
        <span>FVU {fmt(last?.fvu)}</span>
      </p>
      <div className="row">
        {active && <button type="button" onClick={onCancel} disabled={busy}>Cancel run</button>}
        {resumable && <button type="button" onClick={onResume} disabled={busy}>Resume run</button>}
        {(run.sae_ids ?? []).map((id, i) => (
          <Link key={id} to={`/features/${encodeURIComponent(id)}`} data-testid="sae-link">
            Open SAE features{run.hook_names[i] ? ` (${run.hook_names[i]})` : ""} →
          </Link>
        ))}
      </div>
      {run.error && <ErrorMessage error={`Run ${run.status}: ${run.error}`} />}
      <ErrorMessage error={error} />
      <div className="chart-grid" data-testid="train-charts">
        {METRICS.map(([key, title, logY]) => (
          <LineChart key={key} title={title} series={[series[key]]} logY={logY} xLabel="step" />
        ))}
      </div>
      {final && (
        <p data-testid="final-metrics">
          Held-out FVU <strong>{fmt(final.held_out_fvu as number)}</strong> · L0 <strong>{fmt(final.l0 as number)}</strong> ·
          dead <strong>{fmt(final.dead_fraction as number)}</strong>
          {typeof final.ce_loss_recovered === "number" && <> · CE-loss recovered <strong>{fmt(final.ce_loss_recovered)}</strong></>}
        </p>
      )}
    </section>
  );
}
