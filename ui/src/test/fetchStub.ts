import { vi } from "vitest";

/** Test fixture: route table for a stubbed global fetch. Handlers get (url, init) and return [status, body]. */
export type Handler = (url: URL, init: RequestInit) => [number, unknown] | Promise<[number, unknown]>;

export function stubFetch(routes: Record<string, Handler>) {
  const calls: { method: string; url: URL; body: unknown }[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), "http://localhost");
    const method = (init.method ?? "GET").toUpperCase();
    const body = typeof init.body === "string" ? JSON.parse(init.body) : init.body;
    calls.push({ method, url, body });
    const key = `${method} ${url.pathname}`;
    const h = routes[key];
    if (!h) return new Response(JSON.stringify({ detail: `no stub for ${key}` }), { status: 404 });
    const [status, data] = await h(url, init);
    return new Response(status === 204 ? null : JSON.stringify(data), {
      status,
      headers: { "Content-Type": "application/json" },
    });
  });
  vi.stubGlobal("fetch", fn);
  return { fn, calls };
}
