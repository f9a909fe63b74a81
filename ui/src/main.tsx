import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";
import { App } from "./App";
import { AppProviders } from "./AppProviders";
import { createQueryClient } from "./api/queryClient";
import { WorkbenchSocket } from "./ws/socket";
import "./styles.css";

const socket = new WorkbenchSocket();
const queryClient = createQueryClient();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <BrowserRouter>
      <AppProviders client={queryClient} socket={socket}>
        <App />
      </AppProviders>
    </BrowserRouter>
  </StrictMode>,
);
