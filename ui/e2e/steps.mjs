// The browser flow of issue #7, one function per step, run in order by run.mjs against a real server.
// Each step gets ctx = { page, baseUrl, server, cfg, state, shot(name), log(msg) } and throws on failure.
// `state` carries ids from one step to the next (sae id, feature index, patch ids).

const MIN = 60_000;

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function waitFor(fn, { timeout = 30_000, interval = 200, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out after ${timeout / 1000}s waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/** No error banners on the page (server errors are rendered as role=alert). */
async function noAlerts(page, where) {
  const alerts = page.getByRole("alert");
  const n = await alerts.count();
  if (n > 0) throw new Error(`${where}: error shown: ${(await alerts.allInnerTexts()).join(" | ")}`);
}

export async function loadModel({ page, baseUrl, cfg, shot }) {
  await page.goto(`${baseUrl}/model`);
  await page.getByTestId("ws-status").and(page.locator('[data-status="open"]')).waitFor({ timeout: 30_000 });
  await page.getByRole("textbox", { name: "Model" }).fill(cfg.model);
  await page.getByRole("button", { name: "Load" }).click();
  await waitFor(async () => (await page.getByTestId("model-layers").textContent())?.trim(), { timeout: 5 * MIN, what: "model facts" });
  await noAlerts(page, "model page");
  await shot("01-model-loaded");
}

export async function trainSae({ page, baseUrl, cfg, shot, state }) {
  await page.goto(`${baseUrl}/train`);
  await page.getByLabel(/^Layer/).fill(String(cfg.layer));
  await page.getByLabel("d_sae").fill(String(cfg.dSae));
  await page.getByLabel("k", { exact: true }).fill(String(cfg.k));
  await page.getByLabel("Training tokens").fill(String(cfg.tokens));
  await page.getByRole("button", { name: "Start training" }).click();
  const view = page.getByTestId("run-view");
  await view.waitFor({ timeout: 30_000 });
  // live progress: the bar moves and the loss chart gets a line, before the run ends
  const bar = page.getByRole("progressbar", { name: "Training progress" });
  await waitFor(async () => Number(await bar.getAttribute("aria-valuenow")) > 0 || (await view.getAttribute("data-status")) === "completed",
    { timeout: 5 * MIN, what: "training progress" });
  await shot("02-training-progress");
  await waitFor(async () => {
    const s = await view.getAttribute("data-status");
    if (s === "failed" || s === "cancelled") throw new Error(`run ${s}`);
    return s === "completed";
  }, { timeout: cfg.trainTimeoutMs, what: "training to complete", interval: 1000 });
  assert((await page.locator('[data-testid="train-charts"] path[data-series="loss"]').count()) === 1, "loss chart drawn");
  const link = page.getByRole("link", { name: /Open SAE features/ });
  await link.waitFor({ timeout: 30_000 });
  state.saeId = decodeURIComponent((await link.getAttribute("href")).split("/").pop());
  await shot("03-training-done");
}

export async function openFeature({ page, baseUrl, shot, state }) {
  await page.goto(`${baseUrl}/features/${encodeURIComponent(state.saeId)}`);
  // sort by max activation (descending) so the first row is a live feature
  await page.getByRole("button", { name: /Max act/ }).click();
  await page.getByTestId("feature-row").first().waitFor({ timeout: 5 * MIN });
  await page.keyboard.press("j");
  await page.keyboard.press("k");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: /Feature \d+/ }).waitFor({ timeout: 30_000 });
  state.feature = Number(page.url().split("/").pop());
  await page.getByTestId("token-highlight").first().waitFor({ timeout: 30_000 });
  await page.getByTestId("tok").and(page.locator(".tok-active")).first().hover();
  await noAlerts(page, "feature detail");
  await shot("04-feature-detail");
}

export async function patchAndSlide({ page, baseUrl, shot, state }) {
  await page.goto(`${baseUrl}/patches?sae=${encodeURIComponent(state.saeId)}&features=${state.feature}`);
  await page.getByLabel("Mode").selectOption("steer");
  await page.getByRole("button", { name: "Create patch" }).click();
  const row = page.getByTestId("patch-row").last();
  await row.waitFor({ timeout: 30_000 });
  state.patchId = await row.getAttribute("data-patch-id");
  await page.getByTestId("kl").waitFor({ timeout: 60_000 });
  const patchedValues = () => page.getByTestId("bar-patched").evaluateAll((els) => els.map((e) => e.getAttribute("data-value")).join(","));
  const before = await patchedValues();
  await shot("05-patch-before");
  await row.getByTestId("strength-slider").fill("40");
  await waitFor(async () => (await patchedValues()) !== before, { timeout: 30_000, what: "patched bars to change" });
  await noAlerts(page, "patch console");
  await shot("06-patch-after-slider");
}

export async function provenanceRenders({ page, baseUrl, shot, state }) {
  await page.goto(`${baseUrl}/provenance?sae=${encodeURIComponent(state.saeId)}&feature=${state.feature}`);
  await page.getByRole("button", { name: "Trace" }).click();
  await page.getByTestId("prov-node").first().waitFor({ timeout: 2 * MIN });
  assert((await page.getByTestId("prov-node").count()) >= 1, "graph has nodes");
  await noAlerts(page, "provenance");
  await shot("07-provenance");
}

export async function contrastPatchEffect({ page, baseUrl, shot, state, cfg }) {
  await page.goto(`${baseUrl}/contrast?sae=${encodeURIComponent(state.saeId)}`);
  await page.getByLabel(/^Positive set/).fill(cfg.contrast.positive.join("\n"));
  await page.getByLabel(/^Negative set/).fill(cfg.contrast.negative.join("\n"));
  await page.getByRole("button", { name: "Contrast", exact: true }).click();
  await page.getByTestId("contrast-row").first().waitFor({ timeout: 2 * MIN });
  await page.getByTestId("contrast-row").first().getByRole("checkbox").check();
  await page.getByRole("button", { name: /Create patch from selection/ }).click();
  await page.getByLabel(/Target tokens/).fill(cfg.contrast.targets);
  await page.getByRole("button", { name: "Evaluate" }).click();
  await page.getByTestId("effect-positive").waitFor({ timeout: 2 * MIN });
  await noAlerts(page, "contrast");
  await shot("08-contrast-effect");
}

export async function restartReconnects({ page, baseUrl, server, shot }) {
  await page.goto(`${baseUrl}/patches`);
  const pill = page.getByTestId("ws-status");
  await waitFor(async () => (await pill.getAttribute("data-status")) === "open", { what: "socket open" });
  const restarting = server.restart();
  await waitFor(async () => (await pill.getAttribute("data-status")) !== "open", { timeout: 60_000, what: "UI to notice the server is gone" });
  await shot("09-server-down");
  await restarting;
  await waitFor(async () => (await pill.getAttribute("data-status")) === "open", { timeout: 60_000, what: "UI to reconnect" });
  // resync reloaded the page's REST state
  await page.getByTestId("patch-row").first().waitFor({ timeout: 30_000 });
  await shot("10-reconnected");
}

/** In order; each later step depends on the state the earlier ones left. */
export const STEPS = [loadModel, trainSae, openFeature, patchAndSlide, provenanceRenders, contrastPatchEffect, restartReconnects];
