import { useState } from "react";
import { useSearchParams } from "react-router";
import { useBehaviourJobs } from "../../api/queries";
import { AsyncBlock } from "../../components/Status";
import { useServerMessages } from "../../ws/context";
import { JobView, type LiveJob } from "./JobView";
import { RemoveForm } from "./RemoveForm";

const when = (t: number) => new Date(t * 1000).toLocaleString();

/**
 * Remove a behaviour: two prompt sets and a target start a search for SAE feature edits (a background job whose
 * progress and candidates arrive on the socket); follow it live, read its report, make patches from any
 * candidate, export, cancel, resume, reopen earlier jobs (?job=id).
 */
export function BehaviourPage() {
  const [params, setParams] = useSearchParams();
  const jobs = useBehaviourJobs();
  const [live, setLive] = useState<Record<string, LiveJob>>({});
  const current = params.get("job") ?? jobs.data?.[0]?.id ?? null;

  useServerMessages("job", (m) => {
    if (m.kind !== "behaviour_removal") return;
    setLive((prev) => ({ ...prev, [m.job_id]: { ...prev[m.job_id], status: m.status, done: m.done, total: m.total, detail: m.detail } }));
  });
  useServerMessages("behaviour_candidate", (m) => {
    setLive((prev) => ({ ...prev, [m.job_id]: { ...prev[m.job_id], best: m.best_index ?? null } }));
  });

  return (
    <div className="page behaviour-page">
      <h1>Remove a behaviour</h1>
      <p className="muted">
        Find the SAE feature edits that make the model stop producing a target after the positive prompts while the
        negative prompts keep their next-token distribution. Every candidate is measured exactly, on a search split
        and a held-out split.
      </p>
      <RemoveForm onStarted={(id) => setParams({ job: id })} />
      <AsyncBlock query={jobs} what="Loading jobs">
        {(list) => list.length > 0 && (
          <section className="card" aria-label="Jobs">
            <h2>Jobs</h2>
            <table className="table small" aria-label="Behaviour-removal jobs">
              <thead><tr><th>Job</th><th>Status</th><th>Phase</th><th>Evaluated</th><th>Started</th><th /></tr></thead>
              <tbody>
                {list.map((j) => (
                  <tr key={j.id} className={j.id === current ? "selected" : undefined} data-testid="job-row">
                    <td>{j.name ?? j.id}{j.name && <span className="muted small"> {j.id}</span>}</td>
                    <td>{live[j.id]?.status && j.status !== "done" ? live[j.id].status : j.status}{j.error && <span className="bad small" title={j.error}> ({j.error.slice(0, 60)})</span>}</td>
                    <td>{j.phase}</td>
                    <td className="num">{Math.max(live[j.id]?.done ?? 0, j.n_evaluated)} / {j.max_evaluations}</td>
                    <td>{when(j.created_at)}</td>
                    <td>
                      {j.id === current ? <span className="muted">open</span> : (
                        <button type="button" onClick={() => setParams({ job: j.id })} aria-label={`Open job ${j.name ?? j.id}`}>Open</button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        )}
      </AsyncBlock>
      {current && <JobView key={current} jobId={current} live={live[current]} />}
    </div>
  );
}
