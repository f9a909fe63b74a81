import { useMemo } from "react";
import { Link } from "react-router";
import type { TrainingProgress, TrainingRun, TrainingRunDetail } from "../../api/types";
import { LineChart, type Series } from "../../charts/LineChart/LineChart";
import { fmt } from "../../charts/useWidth";
import { ErrorMessage, ProgressBar, formatDuration } from "../../components/Status";
import { hooksLabel, memberLabel, type ChartPoint } from "./trainData";
import { MemberCharts } from "./MemberCharts";
import { MembersTable } from "./MembersTable";

const METRICS = [
  ["mse", "Loss (MSE)", true],
  ["fvu", "FVU", false],
  ["l0", "L0", false],
  ["dead_fraction", "Dead fraction", false],
] as const;

/**
 * What the run is doing now: the named phase with its done/total (buffer filling, evaluation and saving count
 * their own units), and tokens/s only once training has measured a rate (never a frozen 0 while the first
 * buffer fills).
 */
export function PhaseLine({ progress, active }: { progress: TrainingProgress; active: boolean }) {
  if (!active || !progress.phase) return null;
  const total = progress.phase_total ?? 0;
  const done = progress.phase_done ?? 0;
  return (
    <div data-testid="phase">
      <span className="phase-name">{progress.phase}</span>
      {total > 0 && (
        <>
          {" "}<span data-testid="phase-count">{`${done.toLocaleString()} / ${total.toLocaleString()} ${progress.phase_unit ?? ""}`.trim()}</span>
          <ProgressBar value={done / total} label="Phase progress" />
        </>
      )}
    </div>
  );
}

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
  const members = "members" in run && run.members?.length ? run.members : null;
  const perMember = history.some((p) => p.members.length > 0);
  const nMembers = run.n_members ?? 1;
  // no rate yet (the first buffer fills before any step) reads as "—", not as a measured 0
  const rate = progress.tokens_per_s && progress.tokens_per_s > 0 ? fmt(progress.tokens_per_s, 4) : "—";
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
        <span data-testid="tokens-per-s">{rate} tokens/s</span>
        <span>ETA {active ? formatDuration(progress.eta_s) : "—"}</span>
        {nMembers > 1 ? <span>{nMembers} SAEs</span> : <span>FVU {fmt(last?.fvu)}</span>}
        {(progress.passes ?? 1) > 1 && <span>pass {progress.passes}</span>}
      </p>
      <PhaseLine progress={progress} active={active} />
      <div className="row">
        {active && <button type="button" onClick={onCancel} disabled={busy}>Cancel run</button>}
        {resumable && <button type="button" onClick={onResume} disabled={busy}>Resume run</button>}
        {(run.sae_ids ?? []).map((id, i) => {
          // a sweep has several SAEs per hook: name each by its member when the run lists them
          const m = members?.find((x) => x.sae_id === id);
          const what = m ? `${m.hook_name}${nMembers > run.hook_names.length ? ` · ${memberLabel(m)}` : ""}` : run.hook_names[i];
          return (
            <Link key={id} to={`/features/${encodeURIComponent(id)}`} data-testid="sae-link">
              Open SAE features{what ? ` (${what})` : ""} →
            </Link>
          );
        })}
      </div>
      {run.error && <ErrorMessage error={`Run ${run.status}: ${run.error}`} />}
      <ErrorMessage error={error} />
      {perMember ? (
        <MemberCharts history={history} />
      ) : (
        <div className="chart-grid" data-testid="train-charts">
          {METRICS.map(([key, title, logY]) => (
            <LineChart key={key} title={title} series={[series[key]]} logY={logY} xLabel="step" />
          ))}
        </div>
      )}
      {members && <MembersTable members={members} />}
      {final && members && (
        <p data-testid="final-metrics" className="small muted">
          {members.length} SAE{members.length === 1 ? "" : "s"} · trained on{" "}
          {typeof final.train_tokens === "number" ? final.train_tokens.toLocaleString() : "—"} tokens
          {typeof final.passes === "number" && final.passes > 1 ? ` (${final.passes} passes)` : ""} · held-out{" "}
          {typeof final.held_out_tokens === "number" ? final.held_out_tokens.toLocaleString() : "—"} tokens
        </p>
      )}
      {final && !members && (
        <p data-testid="final-metrics">
          Held-out FVU <strong>{fmt(final.held_out_fvu as number)}</strong> · L0 <strong>{fmt(final.l0 as number)}</strong> ·
          dead <strong>{fmt(final.dead_fraction as number)}</strong>
          {typeof final.ce_loss_recovered === "number" && <> · CE-loss recovered <strong>{fmt(final.ce_loss_recovered)}</strong></>}
        </p>
      )}
    </section>
  );
}
