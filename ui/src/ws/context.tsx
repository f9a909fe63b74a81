import { createContext, useContext, useEffect, useRef, useSyncExternalStore, type ReactNode } from "react";
import { WorkbenchSocket, type ConnectionStatus } from "./socket";
import type { MessageOf, ServerMessageType } from "./messages";

const SocketContext = createContext<WorkbenchSocket | null>(null);

export function SocketProvider({ socket, children }: { socket: WorkbenchSocket; children: ReactNode }) {
  useEffect(() => {
    socket.start();
    return () => socket.stop();
  }, [socket]);
  return <SocketContext.Provider value={socket}>{children}</SocketContext.Provider>;
}

export function useSocket(): WorkbenchSocket {
  const s = useContext(SocketContext);
  if (!s) throw new Error("useSocket outside <SocketProvider>");
  return s;
}

export function useConnectionStatus(): ConnectionStatus {
  const s = useSocket();
  return useSyncExternalStore(
    (cb) => s.onStatus(cb),
    () => s.status,
  );
}

/** Call `handler` for each server message of `type` (the latest handler is always used). */
export function useServerMessages<K extends ServerMessageType>(type: K, handler: (msg: MessageOf<K>) => void): void {
  const s = useSocket();
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(
    () =>
      s.subscribe((msg) => {
        if (msg.type === type) ref.current(msg as MessageOf<K>);
      }),
    [s, type],
  );
}

/** Call `fn` after each reconnect, to reload state that may have changed while disconnected. */
export function useResync(fn: () => void): void {
  const s = useSocket();
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => s.onResync(() => ref.current()), [s]);
}
