import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach } from "vitest";
import { notifyManager } from "@tanstack/react-query";

// This suite runs on shared, busy CI machines where one jsdom role query can take over a second: give findBy* and
// waitFor 5 s instead of 1 s before they fail (what they wait for is unchanged).
configure({ asyncUtilTimeout: 5_000 });

afterEach(() => {
  cleanup();
  localStorage.clear();
});

// jsdom has no ResizeObserver; charts use it to follow their container's width.
class ResizeObserverStub {
  observe() {}
  unobserve() {}
  disconnect() {}
}
(globalThis as unknown as { ResizeObserver: unknown }).ResizeObserver ??= ResizeObserverStub;

// TanStack Query hands fetched results to React in a setTimeout(0) batch; the page tests were written against
// results that arrive like a setState right after the fetch resolves (e.g. a findBy* followed at once by an
// assertion on the loaded text). Hand them over in a microtask, which keeps that order.
notifyManager.setScheduler(queueMicrotask);
