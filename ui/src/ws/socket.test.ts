import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay, defaultSocketUrl, WorkbenchSocket } from "./socket";
import { parseServerMessage } from "./messages";
import { FakeWebSocket } from "../test/fakeWebSocket";

function makeSocket(random = () => 0.5) {
  return new WorkbenchSocket({
    url: () => "ws://test/ws",
    WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket,
    backoff: { baseMs: 100, maxMs: 1000, jitter: 0.5 },
    random,
  });
}

describe("backoffDelay", () => {
  it("grows exponentially, is capped, and jitters within bounds", () => {
    const o = { baseMs: 100, maxMs: 1000, jitter: 0.5 };
    expect(backoffDelay(0, o, () => 0)).toBe(50);
    expect(backoffDelay(0, o, () => 1)).toBe(100);
    expect(backoffDelay(3, o, () => 1)).toBe(800);
    expect(backoffDelay(10, o, () => 1)).toBe(1000);
    expect(backoffDelay(10, o, () => 0)).toBe(500);
  });
});

describe("defaultSocketUrl", () => {
  it("adds the stored token as ?token=", () => {
    const loc = { protocol: "https:", host: "h:1" } as Location;
    expect(defaultSocketUrl(loc, null)).toBe("wss://h:1/ws");
    expect(defaultSocketUrl(loc, "a b")).toBe("wss://h:1/ws?token=a%20b");
  });
});

describe("parseServerMessage", () => {
  it("accepts known types and drops junk", () => {
    expect(parseServerMessage('{"type":"job","job_id":"1","kind":"x","status":"done"}')?.type).toBe("job");
    expect(parseServerMessage('{"type":"nope"}')).toBeNull();
    expect(parseServerMessage("not json")).toBeNull();
  });
});

describe("WorkbenchSocket", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWebSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  it("reports status, delivers messages and reconnects with backoff, then resyncs", () => {
    const s = makeSocket();
    const statuses: string[] = [];
    s.onStatus((st) => statuses.push(st));
    const got: string[] = [];
    s.subscribe((m) => got.push(m.type));
    const resync = vi.fn();
    s.onResync(resync);

    s.start();
    expect(s.status).toBe("connecting");
    FakeWebSocket.last().serverOpen();
    expect(s.status).toBe("open");
    expect(resync).not.toHaveBeenCalled();
    FakeWebSocket.last().serverSend({ type: "training_done", run_id: "r", sae_id: "s" });
    expect(got).toEqual(["training_done"]);

    FakeWebSocket.last().serverClose();
    expect(s.status).toBe("reconnecting");
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(74); // first delay = 100*(0.5) + 100*0.5*0.5 = 75
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last().serverClose(); // fails again: next delay doubles (150)
    vi.advanceTimersByTime(149);
    expect(FakeWebSocket.instances).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(3);
    FakeWebSocket.last().serverOpen();
    expect(s.status).toBe("open");
    expect(resync).toHaveBeenCalledTimes(1);
    expect(statuses).toEqual(["connecting", "open", "reconnecting", "open"]);
    s.stop();
    expect(s.status).toBe("closed");
  });

  it("queues the latest message per key while closed and sends it on open", () => {
    const s = makeSocket();
    s.start();
    s.send({ type: "set_strength", patch_id: "p", strength: 1 });
    s.send({ type: "set_strength", patch_id: "p", strength: 2 });
    s.send({ type: "set_prompt", text: "hi" });
    FakeWebSocket.last().serverOpen();
    expect(FakeWebSocket.last().sent.map((x) => JSON.parse(x))).toEqual([
      { type: "set_strength", patch_id: "p", strength: 2 },
      { type: "set_prompt", text: "hi" },
    ]);
    expect(s.send({ type: "set_prompt", text: "now" })).toBe(true);
    s.stop();
  });

  it("does not reconnect after stop", () => {
    const s = makeSocket();
    s.start();
    const ws = FakeWebSocket.last();
    s.stop();
    ws.serverClose();
    vi.advanceTimersByTime(10_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});
