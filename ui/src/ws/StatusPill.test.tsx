import { act, screen } from "@testing-library/react";
import { StatusPill } from "./StatusPill";
import { renderPage } from "../test/render";

describe("StatusPill", () => {
  it("follows the socket: connecting → live → reconnecting", () => {
    vi.useFakeTimers();
    const { ws } = renderPage(<StatusPill />);
    expect(screen.getByTestId("ws-status")).toHaveAttribute("data-status", "connecting");
    act(() => ws().serverOpen());
    expect(screen.getByTestId("ws-status")).toHaveTextContent("Live");
    act(() => ws().serverClose());
    expect(screen.getByTestId("ws-status")).toHaveTextContent("Reconnecting");
    vi.useRealTimers();
  });
});
