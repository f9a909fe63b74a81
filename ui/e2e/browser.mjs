// Debian's Chromium driven by playwright-core (no browser downloads).
import { chromium } from "playwright-core";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** A fresh profile each run (launchPersistentContext owns --user-data-dir). */
export async function launchBrowser({ executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium" } = {}) {
  const userDataDir = await mkdtemp(join(tmpdir(), "iwb-e2e-profile-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 1000 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
