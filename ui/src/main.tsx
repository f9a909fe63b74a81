import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";
import { App } from "./App";
import { SocketProvider } from "./ws/context";
import { WorkbenchSocket } from "./ws/socket";
import "./styles.css";

const socket = new WorkbenchSocket();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <BrowserRouter>
      <SocketProvider socket={socket}>
        <App />
      </SocketProvider>
    </BrowserRouter>
  </StrictMode>,
);
