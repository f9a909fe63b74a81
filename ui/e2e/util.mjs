// Helpers shared by the browser steps (steps*.mjs).

export const MIN = 60_000;

export function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

/** Poll `fn` until it returns something truthy (returned), or throw after `timeout` ms with the last error. */
export async function waitFor(fn, { timeout = 30_000, interval = 200, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out after ${timeout / 1000}s waiting for ${what}${last ? `: ${last.message}` : ""}`);
}
