import { getStoredToken } from "../api/auth";
import { parseServerMessage, type ClientMessage, type ServerMessage } from "./messages";

export type ConnectionStatus = "connecting" | "open" | "reconnecting" | "closed";

export interface BackoffOptions {
  /** first delay, ms */
  baseMs: number;
  /** cap, ms */
  maxMs: number;
  /** 0..1: fraction of the delay that is randomised ("equal jitter") */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 15_000, jitter: 0.5 };

/** Delay before reconnect attempt `attempt` (0-based): min(max, base·2^attempt), the jittered part random. */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF, rand = Math.random): number {
  const exp = Math.min(opts.maxMs, opts.baseMs * 2 ** attempt);
  return exp * (1 - opts.jitter) + exp * opts.jitter * rand();
}

/** ws(s)://<host>/ws[?token=...] for the page's own origin. */
export function defaultSocketUrl(loc: Location = window.location, token = getStoredToken()): string {
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  const base = `${proto}//${loc.host}/ws`;
  return token ? `${base}?token=${encodeURIComponent(token)}` : base;
}

export interface SocketOptions {
  url?: () => string;
  backoff?: BackoffOptions;
  WebSocketImpl?: typeof WebSocket;
  random?: () => number;
}

type Listener = (msg: ServerMessage) => void;

/**
 * The one WebSocket of the app. Reconnects with exponential backoff + jitter; after every reconnect it
 * calls the resync callbacks (pages reload REST state, live subscriptions re-send themselves).
 * Messages sent while closed are dropped, except the latest per "key" which is replayed on open (latest wins).
 */
export class WorkbenchSocket {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = true;
  private everOpened = false;
  private statusValue: ConnectionStatus = "closed";
  private readonly listeners = new Set<Listener>();
  private readonly statusListeners = new Set<(s: ConnectionStatus) => void>();
  private readonly resyncs = new Set<() => void>();
  private readonly pending = new Map<string, ClientMessage>();
  private readonly opts: Required<SocketOptions>;

  constructor(opts: SocketOptions = {}) {
    this.opts = {
      url: opts.url ?? (() => defaultSocketUrl()),
      backoff: opts.backoff ?? DEFAULT_BACKOFF,
      WebSocketImpl: opts.WebSocketImpl ?? globalThis.WebSocket,
      random: opts.random ?? Math.random,
    };
  }

  get status(): ConnectionStatus {
    return this.statusValue;
  }

  /** epoch ms of the next reconnect attempt, if one is scheduled */
  nextRetryAt: number | null = null;

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.dropSocket();
    this.setStatus("closed");
  }

  /** Cancel a pending reconnect and close the current socket without firing its handlers. */
  private dropSocket(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onclose = ws.onerror = ws.onmessage = null;
      ws.close();
    }
  }

  /** Force a reconnect now (e.g. "retry" button or a new API token). */
  reconnectNow(): void {
    this.attempt = 0;
    this.dropSocket();
    if (!this.stopped) this.connect();
  }

  /** Send now if open; otherwise keep it (latest per key) to send on the next open. */
  send(msg: ClientMessage): boolean {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    this.pending.set(messageKey(msg), msg);
    return false;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onStatus(fn: (s: ConnectionStatus) => void): () => void {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  /** Called after every *re*connect (not the first open). */
  onResync(fn: () => void): () => void {
    this.resyncs.add(fn);
    return () => this.resyncs.delete(fn);
  }

  private setStatus(s: ConnectionStatus): void {
    if (s === this.statusValue) return;
    this.statusValue = s;
    for (const fn of [...this.statusListeners]) fn(s);
  }

  private connect(): void {
    this.setStatus(this.everOpened || this.attempt > 0 ? "reconnecting" : "connecting");
    let ws: WebSocket;
    try {
      ws = new this.opts.WebSocketImpl(this.opts.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const isReconnect = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.nextRetryAt = null;
      this.setStatus("open");
      const queued = [...this.pending.values()];
      this.pending.clear();
      for (const m of queued) ws.send(JSON.stringify(m));
      if (isReconnect) for (const fn of [...this.resyncs]) fn();
    };
    ws.onmessage = (ev: MessageEvent) => {
      const msg = parseServerMessage(ev.data);
      if (msg) for (const fn of [...this.listeners]) fn(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.stopped) this.scheduleReconnect();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private scheduleReconnect(): void {
    this.setStatus("reconnecting");
    const delay = backoffDelay(this.attempt, this.opts.backoff, this.opts.random);
    this.attempt += 1;
    this.nextRetryAt = Date.now() + delay;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }
}

function messageKey(msg: ClientMessage): string {
  return msg.type === "set_strength" ? `set_strength:${msg.patch_id}` : msg.type;
}
