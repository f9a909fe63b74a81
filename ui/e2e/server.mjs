// The backend under test: started from a shell command (E2E_SERVER_CMD), awaited on /api/health,
// stopped (whole process group) at the end, and restartable for the reconnect step.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class ServerProcess {
  constructor({ cmd, baseUrl, logFile, cwd, healthTimeoutMs = 300_000 }) {
    this.cmd = cmd;
    this.baseUrl = baseUrl;
    this.logFile = logFile;
    this.cwd = cwd;
    this.healthTimeoutMs = healthTimeoutMs;
    this.child = null;
    this.starts = 0;
  }

  /** Refuse to start when something already answers on our port (another suite's server would take our requests). */
  async assertPortFree() {
    try {
      const res = await fetch(`${this.baseUrl}/api/health`, { signal: AbortSignal.timeout(2000) });
      throw new Error(`another server already answers at ${this.baseUrl} (HTTP ${res.status}); stop it or set E2E_BASE_URL/E2E_PORT to a free port`);
    } catch (e) {
      if (String(e.message).startsWith("another server")) throw e;
    }
  }

  async start() {
    await this.assertPortFree();
    const log = createWriteStream(this.logFile, { flags: "a" });
    this.starts += 1;
    log.write(`\n===== start #${this.starts}: ${this.cmd} =====\n`);
    // detached: the server gets its own process group, so stop() can end it and its children together
    const child = spawn("bash", ["-c", `exec ${this.cmd}`], {
      cwd: this.cwd,
      env: process.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    this.child = child;
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    await this.waitHealthy();
  }

  async waitHealthy() {
    const deadline = Date.now() + this.healthTimeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      if (this.child?.exitCode != null) {
        throw new Error(`server exited with code ${this.child.exitCode} before /api/health answered (see ${this.logFile})`);
      }
      try {
        const res = await fetch(`${this.baseUrl}/api/health`);
        if (res.ok) return;
        last = `HTTP ${res.status}`;
      } catch (e) {
        last = e.cause?.code ?? e.message;
      }
      await sleep(250);
    }
    throw new Error(`server not healthy after ${this.healthTimeoutMs / 1000}s (last: ${last}); see ${this.logFile}`);
  }

  async stop({ timeoutMs = 15_000 } = {}) {
    const child = this.child;
    if (!child || child.exitCode != null || child.signalCode != null) return;
    const kill = (sig) => {
      try {
        process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    kill("SIGTERM");
    const done = await Promise.race([this.exited, sleep(timeoutMs).then(() => null)]);
    if (!done) {
      kill("SIGKILL");
      await this.exited;
    }
    this.child = null;
  }

  async restart() {
    await this.stop();
    await this.start();
  }
}
