import { useEffect, useMemo, useRef, useState } from "react";
import { useSearchParams } from "react-router";
import { errorText, formatDetail } from "../../api/errors";
import { useInference } from "../../api/mutations";
import { usePatches } from "../../api/queries";
import { useConnectionStatus, useResync, useServerMessages, useSocket } from "../../ws/context";
import { ErrorMessage, Loading } from "../../components/Status";
import { PatchForm } from "./PatchForm";
import { PatchList } from "./PatchList";
import { LiveLogits, type LogitsView } from "./LiveLogits";
import { GenerateCompare } from "./GenerateCompare";
import { useDebounced, useSessionState } from "../../components/useSessionState";

export const PROMPT_KEY = "iwb.patch-console.prompt";

export function PatchConsolePage() {
  const [params] = useSearchParams();
  const socket = useSocket();
  const status = useConnectionStatus();
  const patches = usePatches();
  // the prompt stays for the browser session: leaving the page and coming back keeps it
  const [text, setText] = useSessionState(PROMPT_KEY, "The capital of France is");
  const settledText = useDebounced(text, 300);
  const [topK, setTopK] = useState(10);
  const [result, setResult] = useState<LogitsView | null>(null);
  const [latency, setLatency] = useState<number | null>(null);
  const infer = useInference();
  const list = useMemo(() => patches.data ?? [], [patches.data]);
  const enabledIds = useMemo(() => list.filter((p) => p.enabled).map((p) => p.id), [list]);
  const subscribed = useRef<{ ids: string; topK: number } | null>(null);
  const lastSeq = useRef(0);
  const [liveError, setLiveError] = useState<string | null>(null);

  // (re)subscribe when the patch set or top-k changes; a text-only edit is a set_prompt
  useEffect(() => {
    if (!text.trim()) return;
    const t = setTimeout(() => {
      const ids = enabledIds.join(",");
      const s = subscribed.current;
      if (s && s.ids === ids && s.topK === topK) socket.send({ type: "set_prompt", text });
      else socket.send({ type: "subscribe_logits", text, patch_ids: enabledIds, top_k: topK });
      subscribed.current = { ids, topK };
    }, 150);
    return () => clearTimeout(t);
  }, [text, topK, enabledIds, socket]);

  useServerMessages("logits", (m) => {
    if (m.text !== text) return; // stale answer for an older prompt
    if (m.seq <= lastSeq.current && m.seq !== 1) return; // out of order (seq restarts at 1 on a new socket)
    lastSeq.current = m.seq;
    setLiveError(null);
    infer.reset();
    setResult({ original: m.original, patched: m.patched, moved: m.moved, kl: m.kl });
    setLatency(m.latency_ms ?? null);
  });
  const resubscribe = () => {
    subscribed.current = null;
    lastSeq.current = 0;
    if (text.trim()) socket.send({ type: "subscribe_logits", text, patch_ids: enabledIds, top_k: topK });
  };
  // after a reconnect or a model load the cached patches reload (socketSync.ts); the live logits are asked for again
  useResync(resubscribe);
  // the server rejected a live request (no model yet, unknown patch, bad prompt): say so until the next result, and
  // take the old prompt's results off the screen
  useServerMessages("error", (m) => {
    setLiveError(formatDetail(m.detail));
    setResult(null);
  });
  // a model that finishes loading after we subscribed (e.g. right after a server restart): ask again
  useServerMessages("model_loaded", resubscribe);

  const runRest = () => {
    const t0 = performance.now();
    infer.mutate({ text, top_k: topK, patch_ids: enabledIds }, {
      onSuccess: (r) => {
        setResult(r);
        setLiveError(null);
        setLatency(performance.now() - t0);
      },
      onError: () => setResult(null),
    });
  };
  // one message, whichever path (REST or live) failed last: the same prompt error is not shown twice
  const restError = errorText(infer.error);
  const promptError = restError ?? (liveError && `Live update failed: ${liveError}`);

  return (
    <div className="page patch-console">
      <h1>Patch console</h1>
      <div className="two-col">
        <div>
          <PatchForm initialSae={params.get("sae")} initialFeatures={params.get("features") ?? ""} />
          <ErrorMessage error={errorText(patches.error)} onRetry={() => void patches.refetch()} />
          {patches.isPending ? <Loading what="Loading patches" /> : <PatchList patches={list} text={settledText} />}
        </div>
        <div>
          <section className="card" aria-labelledby="prompt-h">
            <h2 id="prompt-h">Prompt</h2>
            <label htmlFor="prompt">Text</label>
            <textarea id="prompt" rows={3} value={text} onChange={(e) => setText(e.target.value)} />
            <div className="row">
              <label htmlFor="topk">Top-k</label>
              <input id="topk" type="number" min={1} max={50} value={topK} className="num" onChange={(e) => setTopK(Number(e.target.value))} />
              <button type="button" onClick={runRest} disabled={infer.isPending || !text.trim()}>
                {infer.isPending ? "Running…" : "Compare now"}
              </button>
              <span className="muted small">{status === "open" ? "live updates on" : "live updates paused (offline)"}</span>
            </div>
            <ErrorMessage error={promptError} />
            {result ? <LiveLogits result={result} latencyMs={latency} />
              : !promptError && <p className="muted">Edit the prompt or press “Compare now”.</p>}
          </section>
          <GenerateCompare text={text} patchIds={enabledIds} />
        </div>
      </div>
    </div>
  );
}
