import { useMemo, useState } from "react";
import { api } from "../../api/endpoints";
import { useAction, useAsync } from "../../api/useAsync";
import type { TrainingProgress, TrainingRun } from "../../api/types";
import { useResync, useServerMessages } from "../../ws/context";
import { ErrorMessage, Loading } from "../../components/Status";
import { TrainForm } from "./TrainForm";
import { RunView } from "./RunView";
import { RunHistory } from "./RunHistory";
import { fromHistory, fromMessage, fromRun, type ChartPoint } from "./trainData";

interface Live {
  progress: TrainingProgress;
  points: ChartPoint[];
}

const newestFirst = (runs: TrainingRun[]) => [...runs].sort((a, b) => b.created_at - a.created_at);

export function TrainPage() {
  const model = useAsync(() => api.getModel().catch(() => null), []);
  const runs = useAsync(async () => newestFirst(await api.listRuns()), []);
  const [chosen, setChosen] = useState<string | null>(null);
  const current =
    chosen ?? runs.data?.find((r) => r.status === "running")?.id ?? runs.data?.[0]?.id ?? null;
  const detail = useAsync(() => api.getRun(current!), [current], current != null);
  const [live, setLive] = useState<Record<string, Live>>({});
  const action = useAction();

  useServerMessages("training_progress", (m) => {
    const { point, progress } = fromMessage(m);
    setLive((prev) => {
      const old = prev[m.run_id]?.points ?? [];
      const points = old.length && old[old.length - 1].step === point.step ? old : [...old, point];
      return { ...prev, [m.run_id]: { progress, points } };
    });
    const known = runs.data?.find((r) => r.id === m.run_id);
    if (!known) runs.reload();
    else if (m.run_id === current && detail.data && detail.data.status === "queued") detail.reload();
  });
  const finished = (runId: string) => {
    runs.reload();
    if (runId === current) detail.reload();
  };
  useServerMessages("training_done", (m) => finished(m.run_id));
  useServerMessages("training_failed", (m) => finished(m.run_id));
  useServerMessages("training_cancelled", (m) => finished(m.run_id));
  useResync(() => {
    setLive({});
    runs.reload();
    if (current) detail.reload();
  });

  const run = (detail.data?.id === current ? detail.data : undefined) ?? runs.data?.find((r) => r.id === current);
  const history = useMemo(() => {
    const base = (detail.data?.id === current ? detail.data.history ?? [] : []).map(fromHistory);
    const lastStep = base.length ? base[base.length - 1].step : -1;
    const extra = (current && live[current]?.points.filter((p) => p.step > lastStep)) || [];
    return base.concat(extra);
  }, [detail.data, live, current]);
  const progress = (current && live[current]?.progress) || (run ? fromRun(run) : null);
  // the run's own status may lag behind a live progress message
  const shownRun = run && live[run.id] && run.status === "queued" ? { ...run, status: "running" as const } : run;

  // the history table follows live progress too (its rows are REST snapshots)
  const historyRows = useMemo(
    () => (runs.data ?? []).map((r) => {
      const l = live[r.id];
      if (!l || (r.status !== "queued" && r.status !== "running")) return r;
      return { ...r, status: "running" as const, step: l.progress.step, tokens_seen: l.progress.tokens };
    }),
    [runs.data, live],
  );

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
      {shownRun && progress ? (
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
        {runs.data ? <RunHistory runs={historyRows} selected={current} onSelect={setChosen} /> : runs.loading && <Loading what="Loading runs" />}
      </section>
    </div>
  );
}
