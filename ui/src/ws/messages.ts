import type { components } from "../api/schema";

/**
 * The /ws protocol, both directions. Every type here is GENERATED from the server's OpenAPI document
 * (`WsServerMessage` / `WsClientMessage`, built from interpretability_workbench/server/schemas/ws.py) into
 * src/api/schema.d.ts by `npm run gen:api`; nothing is written by hand. src/api/schema.test.ts fails when
 * schema.d.ts is older than ui/openapi.json, and tests/test_openapi_snapshot.py when that is older than the
 * server, so a message shape cannot change on the server without the UI's types changing with it.
 */
type S = components["schemas"];

export type ServerMessage = S["WsServerMessage"];
export type ClientMessage = S["WsClientMessage"];
export type ServerMessageType = ServerMessage["type"];
export type MessageOf<K extends ServerMessageType> = Extract<ServerMessage, { type: K }>;

export type HelloMsg = S["HelloMsg"];
export type PongMsg = S["PongMsg"];
export type ErrorMsg = S["ErrorMsg"];
export type LogitsMsg = S["LogitsMsg"];
export type TrainingProgressMsg = S["TrainingProgressMsg"];
export type MemberProgress = S["MemberProgressWire"];
export type TrainingDoneMsg = S["TrainingDoneMsg"];
export type TrainingFailedMsg = S["TrainingFailedMsg"];
export type TrainingCancelledMsg = S["TrainingCancelledMsg"];
export type AnalysisProgressMsg = S["AnalysisProgressMsg"];
export type AnalysisDoneMsg = S["AnalysisDoneMsg"];
export type ModelLoadedMsg = S["ModelLoadedMsg"];
export type JobMsg = S["JobMsg"];
export type BehaviourCandidateMsg = S["BehaviourCandidateMsg"];

/** Every server message type, checked against the generated union in both directions: a type added or
 * removed on the server is a compile error here until this table follows. */
const KNOWN_TYPES: { [K in ServerMessageType]: true } = {
  hello: true, pong: true, error: true, logits: true, training_progress: true, training_done: true,
  training_failed: true, training_cancelled: true, analysis_progress: true, analysis_done: true,
  model_loaded: true, job: true, behaviour_candidate: true,
};
const KNOWN: ReadonlySet<string> = new Set(Object.keys(KNOWN_TYPES));

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
