// The browser flow of issue #7, one function per step, run in order by run.mjs against a real server.
// Each step gets ctx = { page, baseUrl, server, cfg, state, shot(name), log(msg) } and throws on failure.
// `state` carries ids from one step to the next (sae id, feature index, patch ids).
import { removeBehaviour } from "./steps_behaviour.mjs";

import { sweepAndCorpus } from "./steps_train.mjs";

import { MIN, assert, waitFor } from "./util.mjs";

/** No error banners on the page (server errors are rendered as role=alert). */
async function noAlerts(page, where) {
  const alerts = page.getByRole("alert");
  const n = await alerts.count();
  if (n > 0) throw new Error(`${where}: error shown: ${(await alerts.allInnerTexts()).join(" | ")}`);
}

export async function loadModel({ page, baseUrl, cfg, shot, state }) {
  await page.goto(`${baseUrl}/model`);
  await page.getByTestId("ws-status").and(page.locator('[data-status="open"]')).waitFor({ timeout: 30_000 });
  // the page shows what the server has (nothing, or the model it started with), then loads ours
  const info = page.getByTestId("model-info");
  await waitFor(async () => ["none", "ready", "error"].includes(await info.getAttribute("data-status")), { what: "model status" });
  await page.getByRole("textbox", { name: "Model" }).fill(cfg.model);
  await page.getByRole("button", { name: "Load" }).click();
  await waitFor(async () => (await info.getAttribute("data-status")) === "ready" && (await page.getByTestId("model-layers").textContent())?.trim(),
    { timeout: 5 * MIN, what: "model facts" });
  state.nLayers = Number(await page.getByTestId("model-layers").textContent());
  assert(state.nLayers > 1, `model has layers (${state.nLayers})`);
  await noAlerts(page, "model page");
  await shot("01-model-loaded");
}

export async function trainSae({ page, baseUrl, cfg, shot, state }) {
  await page.goto(`${baseUrl}/train`);
  await page.getByLabel(/^Layers/).fill(cfg.layers);
  await page.getByLabel("d_sae").fill(String(cfg.dSae));
  await page.getByLabel("k", { exact: true }).fill(String(cfg.k));
  await page.getByLabel("Training tokens").fill(String(cfg.tokens));
  await page.getByLabel("Batch size").fill(String(cfg.batch));
  // record every (status, progress) the page shows: live progress means the bar moved while the run was running,
  // which only the socket's training_progress messages can do (the page does not poll)
  await page.evaluate(() => {
    const log = (window.__trainLog = []);
    const snap = () => {
      const view = document.querySelector('[data-testid="run-view"]');
      const bar = document.querySelector('[role="progressbar"][aria-label="Training progress"]');
      const entry = `${view?.getAttribute("data-status") ?? "-"}:${bar?.getAttribute("aria-valuenow") ?? "-"}`;
      if (log[log.length - 1] !== entry) log.push(entry);
    };
    new MutationObserver(snap).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  await page.getByRole("button", { name: "Start training" }).click();
  const view = page.getByTestId("run-view");
  await view.waitFor({ timeout: 30_000 });
  await waitFor(async () => {
    const s = await view.getAttribute("data-status");
    if (s === "failed" || s === "cancelled") throw new Error(`run ${s}`);
    return (await page.evaluate(() => window.__trainLog)).some((e) => /^running:([1-9]\d*)$/.test(e)) || s === "done";
  }, { timeout: Math.max(5 * MIN, cfg.jobTimeoutMs), what: "training progress" });
  // a long run: the progress shot waits until the charts have a curve to show (E2E_PROGRESS_SHOT_PCT)
  if (cfg.progressShotPct > 0) {
    await waitFor(async () => {
      const s = await view.getAttribute("data-status");
      if (s === "failed" || s === "cancelled") throw new Error(`run ${s}`);
      const now = Number(await page.getByRole("progressbar", { name: "Training progress" }).getAttribute("aria-valuenow"));
      return s === "done" || now >= cfg.progressShotPct;
    }, { timeout: cfg.trainTimeoutMs, what: `training to reach ${cfg.progressShotPct}%`, interval: 500 });
  }
  await shot("02-training-progress");
  await waitFor(async () => {
    const s = await view.getAttribute("data-status");
    if (s === "failed" || s === "cancelled") throw new Error(`run ${s}: ${await view.innerText()}`);
    return s === "done";
  }, { timeout: cfg.trainTimeoutMs, what: "training to complete", interval: 500 });
  const trail = await page.evaluate(() => window.__trainLog);
  assert(trail.some((e) => /^running:([1-9]\d*)$/.test(e)), `progress bar moved while the run was running (seen: ${trail.join(" ")})`);
  await page.locator('[data-testid="train-charts"] path[data-series]').first().waitFor({ timeout: 30_000 });
  const links = page.getByTestId("sae-link");
  await links.first().waitFor({ timeout: 30_000 });
  const hrefs = await links.evaluateAll((els) => els.map((e) => [e.textContent, e.getAttribute("href")]));
  assert(hrefs.length === cfg.layers.split(",").length, `one SAE per layer (${hrefs.length})`);
  // the deepest layer's SAE: provenance traces upstream from it through the others
  const deepest = hrefs.map(([text, href]) => [Number(/blocks\.(\d+)\./.exec(text)?.[1] ?? -1), href]).sort((a, b) => b[0] - a[0])[0];
  state.saeId = decodeURIComponent(deepest[1].split("/").pop());
  await page.getByTestId("final-metrics").waitFor({ timeout: 30_000 });
  await noAlerts(page, "train page");
  await shot("03-training-done");
}

/** What a token shows as once whitespace marks, byte pieces and special tokens (`<|im_end|>`, `<repo_name>`) are taken out:
 * empty for a token that is none of a word, a number or a punctuation mark. */
const realPart = (t) => (/^<[^<>\s]+>$/.test(t.trim()) && !/^<0x/.test(t.trim()) ? ""
  : t.replace(/<\|[^|]*\|>|<0x[0-9A-Fa-f]{2}>|[␣↵⇥·\s]/g, ""));

/**
 * The Features list's first screen, as a user sees it (default sort and filters, no scrolling): every row whose
 * box lies inside the table's scroller, with its index, label and top-token chips.
 */
async function firstScreenRows(page) {
  return page.getByTestId("vtable").evaluate((scroller) => {
    const box = scroller.getBoundingClientRect();
    const head = scroller.querySelector("thead")?.getBoundingClientRect().height ?? 0;
    return [...scroller.querySelectorAll('[data-testid="feature-row"]')].filter((tr) => {
      const r = tr.getBoundingClientRect();
      return r.top >= box.top + head - 1 && r.bottom <= box.bottom + 1;
    }).map((tr) => ({
      index: Number(tr.querySelector("td a")?.textContent),
      label: tr.children[1].textContent.trim(),
      chips: [...tr.querySelectorAll('[data-testid="token-chip"]')].map((c) => c.textContent),
    }));
  });
}

export async function openFeature({ page, baseUrl, cfg, shot, state, log }) {
  await page.goto(`${baseUrl}/features/${encodeURIComponent(state.saeId)}`);
  // training starts the feature analysis; the panel follows it over the socket
  const panel = page.getByTestId("analysis-panel");
  await waitFor(async () => {
    const s = await panel.getAttribute("data-status");
    if (s === "failed" || s === "cancelled") throw new Error(`analysis ${s}: ${await panel.innerText()}`);
    return s === "done";
  }, { timeout: Math.max(3 * MIN, cfg.jobTimeoutMs), what: "feature analysis", interval: 500 });
  // the first screen, before anything is touched: default sort (consistency, descending), whitespace features hidden
  await page.getByTestId("feature-row").first().waitFor({ timeout: 60_000 });
  assert((await page.getByRole("columnheader", { name: /Consistency/ }).getAttribute("aria-sort")) === "descending",
    "the list is sorted by consistency by default");
  const screen = await firstScreenRows(page);
  state.firstScreen = screen;
  log(`first screen (${screen.length} rows): ${screen.map((r) => `#${r.index} ${r.label}`).join(" | ")}`);
  assert(screen.length >= 1, "the first screen shows rows");
  if (cfg.realLabels) {
    assert(screen.length >= 10, `a full first screen (${screen.length} rows)`);
    // on a real model, every row of the first screen is a feature that peaks on a real token: its label names its
    // peak tokens (not 'promotes:' — all peaks whitespace — nor 'dead'), and its most frequent peak token (the first
    // chip) is a word, number or punctuation, not whitespace, a byte piece or a special token
    const bad = screen.filter((r) => !/^top tokens?: /.test(r.label) || !r.chips.length || !realPart(r.chips[0]));
    assert(bad.length === 0, `${bad.length} of ${screen.length} first-screen rows peak on whitespace or special tokens: ${
      bad.map((r) => `#${r.index} ${r.label} [${r.chips.join(" ")}]`).join(" | ")}`);
  }
  await shot("04-features-list");
  // whitespace features are hidden by default: the list says how many of the analysed features it shows, and the
  // numbers match the server's own count with and without the filter
  const api = async (hide) => (await (await page.request.get(`${baseUrl}/api/saes/${encodeURIComponent(state.saeId)}/features`,
    { params: { limit: 1, ...(hide ? { hide_degenerate: "true" } : {}) } })).json()).total;
  const [kept, all] = [await api(true), await api(false)];
  const filter = page.getByLabel("Hide whitespace features");
  assert(await filter.isChecked(), "the whitespace filter is on by default");
  const count = page.getByTestId("feature-count");
  await waitFor(async () => (await count.innerText()).includes(`of ${kept.toLocaleString("en-US")}`), { what: `the list to show ${kept} features` });
  await filter.uncheck();
  await waitFor(async () => (await count.innerText()).includes(`of ${all.toLocaleString("en-US")}`), { what: `all ${all} features without the filter` });
  await filter.check();
  state.degenerate = all - kept;
  // no visible row's top tokens are only whitespace marks (the filter hid those whose peaks mostly are)
  await page.getByTestId("feature-row").first().waitFor({ timeout: 60_000 });
  const chips = await page.getByTestId("token-chip").allInnerTexts();
  assert(chips.length > 0 && chips.every((c) => c.trim().length > 0), `no empty token chips (${chips.slice(0, 8).join(" ")})`);
  // sort by max activation (descending) so the first row is a live feature
  await page.getByRole("button", { name: /Max act/ }).click();
  await page.getByTestId("feature-row").first().waitFor({ timeout: 60_000 });
  await waitFor(async () => (await page.getByTestId("feature-row").count()) > 2, { what: "feature rows" });
  // keyboard: / focuses the search box, Escape leaves it, j/k move the selection, Enter opens
  await page.keyboard.press("/");
  assert(await page.getByLabel(/^Search/).evaluate((el) => el === document.activeElement), "/ focuses search");
  await page.keyboard.press("Escape");
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  await waitFor(async () => (await page.getByTestId("feature-row").nth(2).getAttribute("aria-selected")) === "true", { what: "j moves the selection" });
  await page.keyboard.press("k");
  await waitFor(async () => (await page.getByTestId("feature-row").nth(1).getAttribute("aria-selected")) === "true", { what: "k moves it back" });
  await page.keyboard.press("k");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: /Feature \d+/ }).waitFor({ timeout: 30_000 });
  state.feature = Number(page.url().split("/").pop());
  await page.getByTestId("token-highlight").first().waitFor({ timeout: 30_000 });
  const active = page.getByTestId("tok").and(page.locator(".tok-active"));
  assert((await active.count()) > 0, "top contexts have highlighted tokens");
  await active.first().hover();
  await noAlerts(page, "feature detail");
  await shot("04-feature-detail");
  // byte-level tokens: the tiny vocabulary splits '“', '”', 'é' into byte pieces; they show merged back into the
  // characters, never as '�' or an empty chip
  await page.getByLabel("Text", { exact: true }).fill("The “quoted” café and the    spaces");
  await page.getByRole("button", { name: "Run feature" }).click();
  const mine = page.getByLabel("Activations on your text");
  await mine.waitFor({ timeout: 60_000 });
  const shown = await mine.getByTestId("tok").allInnerTexts();
  const joined = shown.join("");
  assert(!joined.includes("\ufffd"), `no replacement characters (${joined})`);
  assert(joined.includes("“") && joined.includes("”") && joined.includes("é"), `multi-byte characters merged (${shown.join("|")})`);
  assert(shown.every((t) => t.length > 0), `no empty token chips (${shown.join("|")})`);
  assert(shown.some((t) => /^␣+$/.test(t.trim()) || t.includes("␣")), `whitespace tokens shown as marks (${shown.join("|")})`);
}

export async function saeExportImport({ page, baseUrl, state }) {
  await page.goto(`${baseUrl}/features/${encodeURIComponent(state.saeId)}`);
  const downloading = page.waitForEvent("download", { timeout: 60_000 });
  await page.getByRole("button", { name: /Export SAE/ }).click();
  const download = await downloading;
  const zip = await download.path();
  assert(zip, "export downloaded a file");
  assert(/\.zip$/.test(download.suggestedFilename()), `zip file name (${download.suggestedFilename()})`);
  await page.getByLabel("Import SAE (.zip)").setInputFiles({ name: "exported-sae.zip", mimeType: "application/zip",
    buffer: await (await import("node:fs/promises")).readFile(zip) });
  await page.getByRole("button", { name: "Import", exact: true }).click();
  // the page moves to the imported SAE, a new id
  await waitFor(() => {
    const id = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
    return id !== state.saeId && id.length > 0;
  }, { timeout: 60_000, what: "the imported SAE to open" });
  await page.getByTestId("analysis-panel").and(page.locator('[data-status="none"]')).waitFor({ timeout: 30_000 });
  await noAlerts(page, "SAE import");
}

export async function patchAndSlide({ page, baseUrl, shot, state, cfg }) {
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
  // an ablation of a feature that does not fire on the prompt says so, with its reason
  const prompt = await page.getByLabel("Text", { exact: true }).inputValue();
  const acts = await (await page.request.post(`${baseUrl}/api/saes/${encodeURIComponent(state.saeId)}/activations`,
    { data: { text: prompt, features: Array.from({ length: Math.min(cfg.dSae, 1024) }, (_, i) => i), top_k: 1 } })).json();
  assert(Array.isArray(acts.features), `the activations of the first ${Math.min(cfg.dSae, 1024)} features (${JSON.stringify(acts).slice(0, 200)})`);
  const idle = acts.features.find((f) => !(f.max > 0));
  assert(idle, "some feature is inactive on the prompt");
  await page.getByLabel("Features (indices)").fill(String(idle.index));
  await page.getByLabel("Mode").selectOption("ablate");
  await page.getByRole("button", { name: "Create patch" }).click();
  const idleRow = page.getByTestId("patch-row").last();
  await waitFor(async () => (await idleRow.innerText()).includes(`features ${idle.index}`), { what: "the ablate patch row" });
  const notice = idleRow.getByTestId("inactive-notice");
  await notice.waitFor({ timeout: 60_000 });
  const text = await notice.innerText();
  assert(/inactive on this prompt/.test(text) && /ablating it changes nothing here/.test(text), `inactive notice (${text})`);
  state.idlePatch = await idleRow.getAttribute("data-patch-id");
}

export async function provenanceRenders({ page, baseUrl, shot, state, cfg }) {
  await page.goto(`${baseUrl}/provenance?sae=${encodeURIComponent(state.saeId)}&feature=${state.feature}`);
  await page.getByRole("button", { name: "Trace" }).click();
  await page.getByTestId("prov-node").first().waitFor({ timeout: Math.max(2 * MIN, cfg.jobTimeoutMs) });
  const n = await page.getByTestId("prov-node").count();
  assert(n >= 2, `graph has upstream nodes (${n})`);
  // no two nodes overlap: each node's box (circle and label, from their positions on the page) is clear of the others
  await page.getByRole("button", { name: "Reset view" }).click();
  const boxes = await page.getByTestId("prov-node").evaluateAll((els) => els.map((el) => {
    const r = el.getBoundingClientRect();
    return { id: el.getAttribute("data-id"), x: r.left, y: r.top, w: r.width, h: r.height };
  }));
  const hit = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  const pairs = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) if (hit(boxes[i], boxes[j])) pairs.push(`${boxes[i].id}~${boxes[j].id}`);
  assert(pairs.length === 0, `${pairs.length} overlapping node pairs: ${pairs.slice(0, 5).join(", ")}`);
  const svg = await page.getByRole("group", { name: "Provenance graph" }).boundingBox();
  assert(boxes.every((b) => b.y >= svg.y - 1 && b.y + b.h <= svg.y + svg.height + 1), "every node inside the graph (it grows with its nodes)");
  await noAlerts(page, "provenance");
  await shot("07-provenance");
}

export async function contrastPatchEffect({ page, baseUrl, shot, state, cfg }) {
  await page.goto(`${baseUrl}/contrast?sae=${encodeURIComponent(state.saeId)}`);
  await page.getByLabel(/^Positive set/).fill(cfg.contrast.positive.join("\n"));
  await page.getByLabel(/^Negative set/).fill(cfg.contrast.negative.join("\n"));
  await page.getByRole("button", { name: "Contrast", exact: true }).click();
  await page.getByTestId("contrast-row").first().waitFor({ timeout: Math.max(2 * MIN, cfg.jobTimeoutMs) });
  await page.getByTestId("contrast-row").first().getByRole("checkbox").check();
  await page.getByTestId("contrast-row").nth(1).getByRole("checkbox").check();
  await page.getByLabel("Mode").selectOption("ablate");
  await page.getByRole("button", { name: /Create patch from selection \(2\)/ }).click();
  // made here, it is created switched off: the page says so, the server agrees
  const note = page.getByTestId("contrast-patch-note");
  await note.waitFor({ timeout: 60_000 });
  assert(/switched off/.test(await note.innerText()), "the contrast patch is created off");
  const made = (await (await page.request.get(`${baseUrl}/api/patches`)).json()).filter((p) => p.origin === "contrast");
  assert(made.length === 1 && made[0].enabled === false, `one contrast patch, disabled (${JSON.stringify(made.map((p) => [p.id, p.enabled]))})`);
  state.contrastPatch = made[0].id;
  await page.getByLabel(/Target tokens/).fill(cfg.contrast.targets);
  await page.getByRole("button", { name: "Evaluate" }).click();
  await page.getByTestId("effect-positive").waitFor({ timeout: Math.max(2 * MIN, cfg.jobTimeoutMs) });
  for (const set of ["positive", "negative"]) {
    const text = await page.getByTestId(`effect-${set}`).innerText();
    assert(/before[\s\S]*\d[\s\S]*after[\s\S]*\d/.test(text), `${set} set shows before/after numbers: ${text}`);
  }
  await noAlerts(page, "contrast");
  await shot("08-contrast-effect");
  // in the Patch console it says where it came from and stays unticked
  await page.goto(`${baseUrl}/patches`);
  const row = page.locator(`[data-testid="patch-row"][data-patch-id="${state.contrastPatch}"]`);
  await row.waitFor({ timeout: 30_000 });
  assert((await row.getByTestId("patch-origin").innerText()).includes("Contrast page"), "the origin shows");
  assert(!(await row.getByRole("checkbox").isChecked()), "the contrast patch is not enabled in the console");
}

export async function restartReconnects({ page, baseUrl, server, shot, cfg }) {
  await page.goto(`${baseUrl}/patches`);
  const pill = page.getByTestId("ws-status");
  await waitFor(async () => (await pill.getAttribute("data-status")) === "open", { what: "socket open" });
  await page.getByTestId("kl").waitFor({ timeout: 60_000 });
  const rows = await page.getByTestId("patch-row").count();
  // frames received on sockets opened from now on (the reconnects)
  const frames = [];
  page.on("websocket", (ws) => ws.on("framereceived", (f) => frames.push(String(f.payload))));
  // after the reconnect the page reloads its REST state (resync): a fresh, successful GET /api/patches
  const reloaded = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/patches" && r.request().method() === "GET" && r.ok(),
    { timeout: 2 * MIN });
  const restarting = server.restart();
  await waitFor(async () => (await pill.getAttribute("data-status")) !== "open", { timeout: 60_000, what: "UI to notice the server is gone" });
  await shot("09-server-down");
  await restarting;
  await waitFor(async () => (await pill.getAttribute("data-status")) === "open", { timeout: 60_000, what: "UI to reconnect" });
  await reloaded;
  await waitFor(async () => (await page.getByTestId("patch-row").count()) === rows, { what: `the ${rows} patches to show again` });
  // and live logits flow again on the new socket (the page resubscribed)
  // (the server loads its model again at startup: a real one takes a while)
  await waitFor(() => frames.some((f) => /"type":\s*"logits"/.test(f)), { timeout: Math.max(MIN, cfg.jobTimeoutMs), what: "live logits after the reconnect" });
  await shot("10-reconnected");
}

export async function badModelFailsFast({ page, baseUrl, shot }) {
  await page.goto(`${baseUrl}/model`);
  const info = page.getByTestId("model-info");
  await waitFor(async () => (await info.getAttribute("data-status")) === "ready", { what: "the loaded model" });
  const loaded = (await page.getByTestId("model-name").innerText()).trim();
  await page.getByRole("textbox", { name: "Model" }).fill("no-such-org/no-such-model-e2e");
  const t0 = Date.now();
  await page.getByRole("button", { name: "Load" }).click();
  const alert = page.getByRole("alert");
  await alert.first().waitFor({ timeout: 30_000 });
  const seconds = (Date.now() - t0) / 1000;
  const text = (await alert.allInnerTexts()).join(" ");
  // the server fails at once (no network retries): 2 s, plus the browser's round trip
  assert(seconds <= 3, `a bad model name fails fast (${seconds.toFixed(2)} s)`);
  assert(/no-such-org\/no-such-model-e2e/.test(text) && /download/i.test(text), `the message names the model and how to get it: ${text}`);
  // the model that still serves stays on the card
  assert((await page.getByTestId("model-name").innerText()).trim() === loaded, "the loaded model is still shown");
  await shot("11-model-bad-name");
}

import { explainFeatures } from "./steps_explain.mjs";

/** In order; each later step depends on the state the earlier ones left. */
export const STEPS = [loadModel, trainSae, openFeature, saeExportImport, patchAndSlide, provenanceRenders, contrastPatchEffect,
  restartReconnects, badModelFailsFast, explainFeatures, sweepAndCorpus, removeBehaviour];
