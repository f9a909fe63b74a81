import { useMemo, useState } from "react";
import { api } from "../../api/endpoints";
import { useAction, useAsync } from "../../api/useAsync";
import type { MetricPoint, TrainingProgress, TrainingRun } from "../../api/types";
import { useResync, useServerMessages } from "../../ws/context";
import { ErrorMessage, Loading } from "../../components/Status";
import { TrainForm } from "./TrainForm";
import { RunView } from "./RunView";
import { RunHistory } from "./RunHistory";

interface Live {
  progress: TrainingProgress;
  points: MetricPoint[];
}

function newestFirst(runs: TrainingRun[]): TrainingRun[] {
  return [...runs].sort((a, b) => (b.created_at ?? "").localeCompare(a.created_at ?? ""));
}

export function TrainPage() {
  const model = useAsync(() => api.getModel().catch(() => null), []);
  const runs = useAsync(async () => newestFirst(await api.listRuns()), []);
  const [chosen, setChosen] = useState<string | null>(null);
  const current =
    chosen ?? runs.data?.find((r) => r.status === "running")?.run_id ?? runs.data?.[0]?.run_id ?? null;
  const detail = useAsync(() => api.getRun(current!), [current], current != null);
  const [live, setLive] = useState<Record<string, Live>>({});
  const action = useAction();

  useServerMessages("training_progress", (m) => {
    const { type: _t, run_id, total_steps, tokens_seen, total_tokens, tokens_per_s, eta_s, ...metrics } = m;
    const progress: TrainingProgress = { step: m.step, total_steps, tokens_seen, total_tokens, tokens_per_s, eta_s };
    setLive((prev) => {
      const old = prev[run_id]?.points ?? [];
      return { ...prev, [run_id]: { progress, points: [...old, { ...metrics, tokens_seen }] } };
    });
    if (!runs.data?.some((r) => r.run_id === run_id)) runs.reload();
  });
  const finished = (runId: string) => {
    runs.reload();
    if (runId === current) detail.reload();
  };
  useServerMessages("training_done", (m) => finished(m.run_id));
  useServerMessages("training_failed", (m) => finished(m.run_id));
  useResync(() => {
    setLive({});
    runs.reload();
    if (current) detail.reload();
  });

  const run = detail.data ?? runs.data?.find((r) => r.run_id === current);
  const history = useMemo(() => {
    const base = detail.data?.history ?? [];
    const lastStep = base.length ? base[base.length - 1].step : -1;
    const extra = (current && live[current]?.points.filter((p) => p.step > lastStep)) || [];
    return base.concat(extra);
  }, [detail.data, live, current]);
  const progress = (current && live[current]?.progress) || run?.progress;
  // the run's own status may lag behind a live progress message
  const shownRun = run && live[run.run_id] && run.status === "queued" ? { ...run, status: "running" as const } : run;

  const act = async (fn: (id: string) => Promise<unknown>) => {
    if (!current) return;
    await action.run(() => fn(current));
    runs.reload();
    detail.reload();
  };

  return (
    <div className="page train-page">
      <h1>Train</h1>
      <TrainForm
        nLayers={model.data?.n_layers ?? null}
        onStarted={(id) => {
          setChosen(id);
          runs.reload();
        }}
      />
      {shownRun ? (
        <RunView
          run={shownRun}
          progress={progress}
          history={history}
          busy={action.busy}
          error={action.error ?? detail.error}
          onCancel={() => act(api.cancelRun)}
          onResume={() => act(api.resumeRun)}
        />
      ) : current && detail.loading ? (
        <Loading what="Loading run" />
      ) : null}
      <section className="card" aria-labelledby="hist-h">
        <h2 id="hist-h">Run history</h2>
        <ErrorMessage error={runs.error} onRetry={runs.reload} />
        {runs.data ? <RunHistory runs={runs.data} selected={current} onSelect={setChosen} /> : runs.loading && <Loading what="Loading runs" />}
      </section>
    </div>
  );
}
