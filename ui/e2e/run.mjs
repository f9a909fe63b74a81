#!/usr/bin/env node
// End-to-end browser suite: a real server (E2E_SERVER_CMD) + Debian's Chromium via playwright-core.
//
//   E2E_SERVER_CMD   shell command that starts the backend on E2E_BASE_URL's port (required; unset → SKIP)
//   E2E_BASE_URL     default http://127.0.0.1:8765
//   E2E_WORK_DIR     folder the server command may use for its model and workspace (IWB_HOME); kept across the
//                    restart step. Unset: a fresh temp folder, removed at the end. Exported to the server command.
//   E2E_MODEL        model to load on the Model page (default "default"); "{work}" stands for E2E_WORK_DIR
//   E2E_LAYERS, E2E_D_SAE, E2E_K, E2E_TOKENS, E2E_BATCH, E2E_TRAIN_TIMEOUT_S   the small SAEs to train (one run)
//   E2E_JOB_TIMEOUT_S  how long the slower waits may take (analysis, provenance, contrast, the model after the
//                    restart; default 180): raise it on a real model on a busy CPU
//   E2E_PROGRESS_SHOT_PCT  the training screenshot waits until the run is this far (percent; default 0: first move)
//   E2E_REAL_LABELS  "1": the Features step asserts that the first screen of the list (default sort and filters)
//                    shows only features that peak on real tokens (default: on when E2E_MODEL is "default")
//   E2E_DOCS_DIR     where the screenshots are copied when every step that ran passed (default "none": tests write
//                    only under ui/test-results/; `make screenshots` sets it to docs/screenshots)
//   E2E_ONLY         comma-separated step names to run (debugging; later steps need earlier state)
//   CHROMIUM_PATH    default /usr/bin/chromium
// Screenshots, server log and a JSON report go to ui/test-results/.
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ServerProcess } from "./server.mjs";
import { launchBrowser } from "./browser.mjs";
import { STEPS } from "./steps.mjs";

const uiDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = join(uiDir, "test-results");
const env = process.env;

const cfg = {
  baseUrl: (env.E2E_BASE_URL ?? "http://127.0.0.1:8765").replace(/\/$/, ""),
  serverCmd: env.E2E_SERVER_CMD,
  model: env.E2E_MODEL ?? "default",
  layers: env.E2E_LAYERS ?? "0,1,2",
  dSae: Number(env.E2E_D_SAE ?? 128),
  k: Number(env.E2E_K ?? 8),
  tokens: Number(env.E2E_TOKENS ?? 20000),
  batch: Number(env.E2E_BATCH ?? 512),
  trainTimeoutMs: Number(env.E2E_TRAIN_TIMEOUT_S ?? 600) * 1000,
  progressShotPct: Number(env.E2E_PROGRESS_SHOT_PCT ?? 0),
  jobTimeoutMs: Number(env.E2E_JOB_TIMEOUT_S ?? 180) * 1000,
  realLabels: env.E2E_REAL_LABELS ? env.E2E_REAL_LABELS === "1" : (env.E2E_MODEL ?? "default") === "default",
  only: env.E2E_ONLY ? new Set(env.E2E_ONLY.split(",").map((s) => s.trim())) : null,
  contrast: {
    positive: ["The secret word is banana.", "Remember: banana banana.", "I really like banana bread."],
    negative: ["The weather is nice today.", "Python is a programming language.", "She walked to the station."],
    targets: "\\sbanana, \\sthe",
  },
};

async function main() {
  if (!cfg.serverCmd) {
    console.log("SKIP: no server (set E2E_SERVER_CMD to a command that serves the workbench on " + cfg.baseUrl + ")");
    return 0;
  }
  await mkdir(outDir, { recursive: true });
  for (const f of await readdir(outDir)) if (f.endsWith(".png") || f === "server.log") await rm(join(outDir, f), { force: true });
  const ownWork = !env.E2E_WORK_DIR;
  const workDir = env.E2E_WORK_DIR ?? (await mkdtemp(join(tmpdir(), "iwb-e2e-")));
  process.env.E2E_WORK_DIR = workDir; // the server command inherits it (and keeps it across the restart)
  cfg.model = cfg.model.replaceAll("{work}", workDir);
  const server = new ServerProcess({ cmd: cfg.serverCmd, baseUrl: cfg.baseUrl, logFile: join(outDir, "server.log"), cwd: resolve(uiDir, "..") });
  const results = [];
  let browser;
  try {
    console.log(`starting server: ${cfg.serverCmd}`);
    await server.start();
    browser = await launchBrowser();
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    const consoleErrors = [];
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    page.setDefaultTimeout(30_000);
    const state = {};
    // scrolled to the top first, so the sticky header sits where it belongs in a full-page shot
    const shot = async (name) => {
      await page.evaluate(() => window.scrollTo(0, 0)).catch(() => {});
      await page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });
    };
    let failed = false;
    for (const step of STEPS) {
      if (failed || (cfg.only && !cfg.only.has(step.name))) {
        results.push({ step: step.name, status: "skipped" });
        console.log(`- ${step.name}: skipped`);
        continue;
      }
      const t0 = Date.now();
      try {
        await step({ page, baseUrl: cfg.baseUrl, server, cfg, state, shot, log: console.log });
        results.push({ step: step.name, status: "passed", ms: Date.now() - t0 });
        console.log(`✓ ${step.name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
      } catch (e) {
        failed = true;
        await shot(`FAIL-${step.name}`).catch(() => {});
        results.push({ step: step.name, status: "failed", ms: Date.now() - t0, error: String(e?.message ?? e) });
        console.log(`✗ ${step.name}: ${e?.message ?? e}`);
      }
    }
    if (consoleErrors.length) console.log(`browser console errors:\n  ${consoleErrors.slice(0, 20).join("\n  ")}`);
  } catch (e) {
    results.push({ step: "setup", status: "failed", error: String(e?.message ?? e) });
    console.log(`✗ setup: ${e?.message ?? e}`);
  } finally {
    await browser?.close();
    await server.stop();
  }
  await writeFile(join(outDir, "e2e-report.json"), JSON.stringify({ baseUrl: cfg.baseUrl, results }, null, 2));
  const n = (s) => results.filter((r) => r.status === s).length;
  if (ownWork) await rm(workDir, { recursive: true, force: true });
  const docsDir = env.E2E_DOCS_DIR && env.E2E_DOCS_DIR !== "none" ? resolve(uiDir, env.E2E_DOCS_DIR) : "none";
  // skipped steps are those E2E_ONLY left out (a failure skips the rest, and fails the run)
  if (n("failed") === 0 && n("passed") > 0 && docsDir !== "none") {
    await mkdir(docsDir, { recursive: true });
    const shots = (await readdir(outDir)).filter((f) => /^\d\d-.*\.png$/.test(f));
    for (const f of shots) await copyFile(join(outDir, f), join(docsDir, f));
    console.log(`copied ${shots.length} screenshots to ${docsDir}`);
  }
  console.log(`${n("passed")} passed, ${n("failed")} failed, ${n("skipped")} skipped`);
  return n("failed") > 0 ? 1 : 0;
}

process.exitCode = await main();
