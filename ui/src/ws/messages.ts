import type { ModelStatus, TokenMove, TokenProb } from "../api/types";

/**
 * Server → client messages on /ws, a tagged union on `type`. Every bus event arrives as
 * {type, ts, ...data} (interpretability_workbench/events.py); `hello` on connect, `pong` for `ping`,
 * `logits` from the live-logits worker (server/ws_patches.py). The schema does not describe the socket,
 * so these are written from the producers' publish() calls.
 */
interface Base {
  ts?: number;
}
export interface HelloMsg extends Base {
  type: "hello";
  model_status: ModelStatus;
}
export interface PongMsg extends Base {
  type: "pong";
  model_status: ModelStatus;
}
/** one hook's live numbers inside a training_progress message */
export interface HookProgress {
  hook_name: string;
  mse: number | null;
  fvu: number | null;
  l0: number | null;
  dead_fraction: number | null;
}
export interface TrainingProgressMsg extends Base {
  type: "training_progress";
  run_id: string;
  total_tokens: number;
  step: number;
  tokens: number;
  mse: number | null;
  fvu: number | null;
  l0: number | null;
  dead_fraction: number | null;
  tokens_per_s: number | null;
  eta_s: number | null;
  lr?: number | null;
  peak_memory_bytes?: number;
  /** starting | training | evaluating */
  phase?: string;
  per_hook?: HookProgress[];
  tokens_read?: number;
}
export interface TrainingDoneMsg extends Base {
  type: "training_done";
  run_id: string;
  sae_ids: string[];
  metrics?: Record<string, unknown>[] | null;
}
export interface TrainingFailedMsg extends Base {
  type: "training_failed";
  run_id: string;
  error: string;
}
export interface TrainingCancelledMsg extends Base {
  type: "training_cancelled";
  run_id: string;
  step?: number;
  tokens?: number;
  reason?: string;
}
export interface AnalysisProgressMsg extends Base {
  type: "analysis_progress";
  sae_id: string;
  /** e.g. activations, logits, saving */
  phase: string;
  done: number;
  total: number;
}
export interface AnalysisDoneMsg extends Base {
  type: "analysis_done";
  sae_id: string;
  /** done | failed | cancelled */
  status: string;
  error?: string | null;
  n_features?: number;
  n_tokens?: number;
  seconds?: number;
}
export interface ModelLoadedMsg extends Base {
  type: "model_loaded";
  model: Record<string, unknown>;
}
export interface LogitsMsg extends Base {
  type: "logits";
  seq: number;
  text: string;
  top_k?: number;
  patch_ids: string[];
  original: TokenProb[];
  patched: TokenProb[];
  moved: TokenMove[];
  kl: number;
  from_layer?: number | null;
  n_tokens?: number;
  compute_ms?: number;
  latency_ms?: number;
}
export interface JobMsg extends Base {
  type: "job";
  job_id?: string;
  kind?: string;
  status?: string;
  detail?: string | null;
}
/** the server rejected a client message (e.g. an unknown patch id) or a live computation failed */
export interface ErrorMsg extends Base {
  type: "error";
  detail: unknown;
  status?: number;
}

export type ServerMessage =
  | HelloMsg | PongMsg
  | TrainingProgressMsg | TrainingDoneMsg | TrainingFailedMsg | TrainingCancelledMsg
  | AnalysisProgressMsg | AnalysisDoneMsg | ModelLoadedMsg | LogitsMsg | JobMsg | ErrorMsg;
export type ServerMessageType = ServerMessage["type"];
export type MessageOf<K extends ServerMessageType> = Extract<ServerMessage, { type: K }>;

/** Client → server messages. */
export type ClientMessage =
  | { type: "subscribe_logits"; text: string; patch_ids: string[] | null; top_k: number }
  | { type: "set_strength"; patch_id: string; strength: number }
  | { type: "set_prompt"; text: string }
  | { type: "unsubscribe_logits" }
  | { type: "ping" };

const KNOWN: ReadonlySet<string> = new Set<ServerMessageType>([
  "hello", "pong", "training_progress", "training_done", "training_failed", "training_cancelled",
  "analysis_progress", "analysis_done", "model_loaded", "logits", "job", "error",
]);

/** Parse one frame; unknown or malformed frames give null (never throw into the socket loop). */
export function parseServerMessage(raw: unknown): ServerMessage | null {
  if (typeof raw !== "string") return null;
  try {
    const msg = JSON.parse(raw) as { type?: unknown };
    if (msg && typeof msg === "object" && typeof msg.type === "string" && KNOWN.has(msg.type)) {
      return msg as ServerMessage;
    }
  } catch {
    /* ignore malformed frames */
  }
  return null;
}
