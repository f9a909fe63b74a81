import type { ReactNode } from "react";
import { QueryClientProvider, type QueryClient } from "@tanstack/react-query";
import { SocketProvider } from "./ws/context";
import type { WorkbenchSocket } from "./ws/socket";
import { useSocketQuerySync } from "./api/socketSync";

function SocketQuerySync() {
  useSocketQuerySync();
  return null;
}

/** The app's server state: one QueryClient and one socket, the socket's events invalidating the client's queries. */
export function AppProviders({ client, socket, children }: { client: QueryClient; socket: WorkbenchSocket; children: ReactNode }) {
  return (
    <QueryClientProvider client={client}>
      <SocketProvider socket={socket}>
        <SocketQuerySync />
        {children}
      </SocketProvider>
    </QueryClientProvider>
  );
}
