import { useMemo, useState } from "react";
import { errorText } from "../../api/errors";
import { useRunAction } from "../../api/mutations";
import { useModel, useRun, useRuns } from "../../api/queries";
import type { TrainingProgress } from "../../api/types";
import { useResync, useServerMessages } from "../../ws/context";
import { ErrorMessage, Loading } from "../../components/Status";
import { TrainForm } from "./TrainForm";
import { CorporaPanel } from "./CorporaPanel";
import { RunView } from "./RunView";
import { RunHistory } from "./RunHistory";
import { fromHistory, fromMessage, fromRun, type ChartPoint } from "./trainData";

interface Live {
  progress: TrainingProgress;
  points: ChartPoint[];
}

/**
 * Start runs, follow the current one live, browse the history. The run list and the run's detail are REST
 * answers in the query cache (socketSync.ts reloads them when a run starts, leaves the queue or ends); the live
 * progress and chart points between those answers come from training_progress messages and live here.
 */
export function TrainPage() {
  // without the model the form still works; it just cannot say how many layers there are
  const model = useModel();
  const runs = useRuns();
  const [chosen, setChosen] = useState<string | null>(null);
  const [uploaded, setUploaded] = useState<string | undefined>(undefined);
  const current =
    chosen ?? runs.data?.find((r) => r.status === "running")?.id ?? runs.data?.[0]?.id ?? null;
  const detail = useRun(current);
  const [live, setLive] = useState<Record<string, Live>>({});
  const cancel = useRunAction("cancel");
  const resume = useRunAction("resume");

  useServerMessages("training_progress", (m) => {
    const { point, progress } = fromMessage(m);
    setLive((prev) => {
      const old = prev[m.run_id]?.points ?? [];
      const points = old.length && old[old.length - 1].step === point.step ? old : [...old, point];
      return { ...prev, [m.run_id]: { progress, points } };
    });
  });
  // progress sent while the socket was down is lost: the reloaded REST state replaces it
  useResync(() => setLive({}));

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

  return (
    <div className="page train-page">
      <h1>Train</h1>
      <TrainForm nLayers={model.data?.n_layers ?? null} onStarted={setChosen} corpus={uploaded} />
      <CorporaPanel onUploaded={setUploaded} />
      {shownRun && progress ? (
        <RunView
          run={shownRun}
          progress={progress}
          history={history}
          busy={cancel.isPending || resume.isPending}
          error={errorText(cancel.error ?? resume.error ?? detail.error)}
          onCancel={() => current && cancel.mutate(current)}
          onResume={() => current && resume.mutate(current)}
        />
      ) : current && detail.isPending ? (
        <Loading what="Loading run" />
      ) : null}
      <section className="card" aria-labelledby="hist-h">
        <h2 id="hist-h">Run history</h2>
        <ErrorMessage error={errorText(runs.error)} onRetry={() => void runs.refetch()} />
        {runs.data ? <RunHistory runs={historyRows} selected={current} onSelect={setChosen} /> : runs.isPending && <Loading what="Loading runs" />}
      </section>
    </div>
  );
}
