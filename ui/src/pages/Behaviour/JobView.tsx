import { useState } from "react";
import { Link } from "react-router";
import { errorText } from "../../api/errors";
import { useBehaviourCandidatePatch, useBehaviourJobAction, useExportBehaviour } from "../../api/mutations";
import { useBehaviourCandidates, useBehaviourJob } from "../../api/queries";
import type { Patch } from "../../api/types";
import { AsyncBlock, ErrorMessage, ProgressBar } from "../../components/Status";
import { CandidateTable } from "./CandidateTable";
import { ReportView } from "./ReportView";

/** What the latest `job` and `behaviour_candidate` events said about a job (newer than its REST detail). */
export interface LiveJob {
  status?: string;
  done?: number;
  total?: number;
  detail?: string | null;
  best?: number | null;
}

const ACTIVE = new Set(["queued", "running"]);
const RESUMABLE = new Set(["interrupted", "cancelled", "failed"]);

/**
 * One behaviour-removal job: its progress, cancel / resume / export, the live candidate table (best
 * highlighted, patches from any row) and, once done, the report.
 */
export function JobView({ jobId, live }: { jobId: string; live: LiveJob | undefined }) {
  const job = useBehaviourJob(jobId);
  const candidates = useBehaviourCandidates(jobId);
  const cancel = useBehaviourJobAction("cancel");
  const resume = useBehaviourJobAction("resume");
  const exporter = useExportBehaviour();
  const makePatch = useBehaviourCandidatePatch(jobId);
  const [made, setMade] = useState<{ index: number; patches: Patch[] } | null>(null);

  return (
    <AsyncBlock query={job} what="Loading the job">
      {(j) => {
        // a job event is newer than the detail until the detail is read again
        const status = live?.status && j.status !== "done" ? live.status : j.status;
        const done = Math.max(live?.done ?? 0, j.n_evaluated);
        const total = live?.total || j.max_evaluations;
        const best = j.report?.best_candidate ?? live?.best ?? j.best?.index ?? null;
        return (
          <section aria-label="Job" data-testid="behaviour-job" data-status={status}>
            <div className="card">
              <div className="row">
                <h2>{j.name ?? j.id}</h2>
                <span className={`badge badge-${status}`} data-testid="job-status">{status}</span>
                <span className="muted small">
                  {j.phase}{live?.detail && live.detail !== j.phase ? ` · ${live.detail}` : ""} · {done} / {total} evaluated
                  {j.attempt > 0 ? ` · attempt ${j.attempt + 1}` : ""} · {j.model_id}
                </span>
              </div>
              {ACTIVE.has(status) && <ProgressBar value={total > 0 ? done / total : null} label="Search progress" />}
              {j.missing_layers.length > 0 && (
                <p className="muted small">
                  Layers {j.missing_layers.join(", ")} had no SAE: {j.training_run_id ? <>trained by run <Link to="/train">{j.training_run_id}</Link></> : "they are trained first"}.
                </p>
              )}
              {j.sae_ids.length > 0 && <p className="muted small">SAEs searched: {j.sae_ids.join(", ")}</p>}
              {status === "failed" && <ErrorMessage error={`The job failed: ${j.error ?? live?.detail ?? "no reason given"}`} />}
              <div className="row">
                {ACTIVE.has(status) && (
                  <button type="button" onClick={() => cancel.mutate(jobId)} disabled={cancel.isPending}>Cancel</button>
                )}
                {RESUMABLE.has(status) && (
                  <button type="button" onClick={() => resume.mutate(jobId)} disabled={resume.isPending}>Resume</button>
                )}
                {j.status === "done" && (
                  <button type="button" onClick={() => exporter.mutate(jobId)} disabled={exporter.isPending}
                    title={j.report?.export_note}>Export PEFT adapter</button>
                )}
              </div>
              <ErrorMessage error={errorText(cancel.error) ?? errorText(resume.error) ?? errorText(exporter.error)} />
            </div>
            {made && (
              <p className="notice" role="status" data-testid="made-patches">
                Candidate {made.index} is now {made.patches.length} patch{made.patches.length === 1 ? "" : "es"}{" "}
                ({made.patches.map((p) => p.id).join(", ")}): <Link to="/patches">open the Patch console</Link>.
              </p>
            )}
            <ErrorMessage error={errorText(makePatch.error)} />
            {j.report && <ReportView report={j.report} />}
            <AsyncBlock query={candidates} what="Loading candidates">
              {(rows) => (
                <CandidateTable rows={rows} best={best}
                  making={makePatch.isPending ? (makePatch.variables?.index ?? null) : null}
                  onMakePatch={(index) => makePatch.mutate({ index }, { onSuccess: (patches) => setMade({ index, patches }) })} />
              )}
            </AsyncBlock>
          </section>
        );
      }}
    </AsyncBlock>
  );
}
