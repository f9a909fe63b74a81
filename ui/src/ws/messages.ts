import type { MetricPoint, TokenMove, TokenProb, TrainingMetrics } from "../api/types";

/** Server → client messages on /ws, a tagged union on `type`. */
export interface TrainingProgressMsg extends MetricPoint {
  type: "training_progress";
  run_id: string;
  total_steps: number;
  tokens_seen: number;
  total_tokens: number;
  tokens_per_s: number | null;
  eta_s: number | null;
}
export interface TrainingDoneMsg {
  type: "training_done";
  run_id: string;
  sae_id: string | null;
  metrics?: TrainingMetrics | null;
}
export interface TrainingFailedMsg {
  type: "training_failed";
  run_id: string;
  error: string;
}
export interface AnalysisProgressMsg {
  type: "analysis_progress";
  sae_id: string;
  /** 0..1 */
  fraction: number;
  stage?: string;
  done?: boolean;
}
export interface LogitsMsg {
  type: "logits";
  text: string;
  patch_ids: string[];
  original: TokenProb[];
  patched: TokenProb[];
  moved: TokenMove[];
  kl: number;
  latency_ms?: number;
}
export interface JobMsg {
  type: "job";
  job_id: string;
  kind: string;
  status: string;
  detail?: string | null;
}
/** the server may reject a client message, e.g. an unknown patch id */
export interface ErrorMsg {
  type: "error";
  detail: unknown;
}

export type ServerMessage =
  | TrainingProgressMsg | TrainingDoneMsg | TrainingFailedMsg | AnalysisProgressMsg | LogitsMsg | JobMsg | ErrorMsg;
export type ServerMessageType = ServerMessage["type"];
export type MessageOf<K extends ServerMessageType> = Extract<ServerMessage, { type: K }>;

/** Client → server messages. */
export type ClientMessage =
  | { type: "subscribe_logits"; text: string; patch_ids: string[]; top_k: number }
  | { type: "set_strength"; patch_id: string; strength: number }
  | { type: "set_prompt"; text: string };

const KNOWN: ReadonlySet<string> = new Set<ServerMessageType>([
  "training_progress", "training_done", "training_failed", "analysis_progress", "logits", "job", "error",
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
