import type { ReactElement } from "react";
import { render } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";
import { SocketProvider } from "../ws/context";
import { WorkbenchSocket } from "../ws/socket";
import { FakeWebSocket } from "./fakeWebSocket";

/** Render a page inside a router and a socket backed by FakeWebSocket. */
export function renderPage(element: ReactElement, { path = "/", route = "/" }: { path?: string; route?: string } = {}) {
  FakeWebSocket.reset();
  const socket = new WorkbenchSocket({ url: () => "ws://test/ws", WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket });
  const utils = render(
    <MemoryRouter initialEntries={[route]}>
      <SocketProvider socket={socket}>
        <Routes>
          <Route path={path} element={element} />
          <Route path="*" element={<p>elsewhere</p>} />
        </Routes>
      </SocketProvider>
    </MemoryRouter>,
  );
  return { ...utils, socket, ws: () => FakeWebSocket.last() };
}
