/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The FastAPI server (run.py, default 127.0.0.1:8000) serves the built SPA at "/" and the API under
// /api and /ws. In development, Vite serves the UI and proxies those two prefixes to it.
const backend = process.env.IWB_BACKEND ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  server: {
    proxy: {
      "/api": { target: backend, changeOrigin: true },
      "/ws": { target: backend.replace(/^http/, "ws"), ws: true, changeOrigin: true },
    },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    css: false,
    // the longest page flows take 5-7 s on a loaded two-core machine (vitest's default limit is 5 s)
    testTimeout: 20_000,
  },
});
