import { useConnectionStatus, useSocket } from "./context";

const TEXT = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Offline",
} as const;

/** Visible connection status of the WebSocket; click to retry now when not connected. */
export function StatusPill() {
  const status = useConnectionStatus();
  const socket = useSocket();
  const down = status !== "open";
  return (
    <button
      type="button"
      className={`status-pill status-${status}`}
      data-testid="ws-status"
      data-status={status}
      aria-live="polite"
      title={down ? "Server connection lost — click to retry now" : "Connected to the server"}
      onClick={() => down && socket.reconnectNow()}
    >
      <span className="dot" aria-hidden="true" /> {TEXT[status]}
    </button>
  );
}
