/** Test fixture: a controllable stand-in for the browser WebSocket. */
export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  onopen: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  constructor(public url: string) {
    FakeWebSocket.instances.push(this);
  }
  send(data: string) {
    this.sent.push(data);
  }
  close() {
    this.readyState = 3;
  }
  // --- test controls ---
  serverOpen() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  serverClose() {
    this.readyState = 3;
    this.onclose?.(new CloseEvent("close"));
  }
  serverSend(obj: unknown) {
    this.onmessage?.(new MessageEvent("message", { data: typeof obj === "string" ? obj : JSON.stringify(obj) }));
  }
  static last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }
  static reset() {
    FakeWebSocket.instances = [];
  }
}
