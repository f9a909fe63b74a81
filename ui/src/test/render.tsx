import type { ReactElement } from "react";
import { render } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";
import type { QueryClient } from "@tanstack/react-query";
import { AppProviders } from "../AppProviders";
import { createQueryClient } from "../api/queryClient";
import { WorkbenchSocket } from "../ws/socket";
import { FakeWebSocket } from "./fakeWebSocket";

/** The app's QueryClient with its retry policy and stale times, retrying at once instead of after a backoff. */
export function createTestQueryClient(): QueryClient {
  return createQueryClient({ retryDelay: 0 });
}

/**
 * Render a page as main.tsx does (a QueryClient, a socket whose events invalidate its queries), inside a router,
 * with the socket backed by FakeWebSocket and a fresh cache per call (no test sees another's answers).
 */
export function renderPage(
  element: ReactElement,
  { path = "/", route = "/", client = createTestQueryClient() }: { path?: string; route?: string; client?: QueryClient } = {},
) {
  FakeWebSocket.reset();
  const socket = new WorkbenchSocket({ url: () => "ws://test/ws", WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket });
  const utils = render(
    <MemoryRouter initialEntries={[route]}>
      <AppProviders client={client} socket={socket}>
        <Routes>
          <Route path={path} element={element} />
          <Route path="*" element={<p>elsewhere</p>} />
        </Routes>
      </AppProviders>
    </MemoryRouter>,
  );
  return { ...utils, socket, client, ws: () => FakeWebSocket.last() };
}
