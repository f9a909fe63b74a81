import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

/**
 * Every (method, path) the UI calls (endpoints.ts); each must exist in ui/openapi.json, which
 * `python scripts/dump_openapi.py` dumps from the live app (tests/test_openapi_snapshot.py keeps it current).
 */
export const USED_ENDPOINTS: [string, string][] = [
  ["get", "/api/health"],
  ["get", "/api/model"], ["post", "/api/model"],
  ["get", "/api/corpora"], ["post", "/api/corpora"],
  ["get", "/api/training"], ["post", "/api/training"], ["get", "/api/training/{run_id}"],
  ["post", "/api/training/{run_id}/cancel"], ["post", "/api/training/{run_id}/resume"],
  ["get", "/api/saes"], ["get", "/api/saes/{sae_id}"], ["get", "/api/saes/{sae_id}/export"], ["post", "/api/saes/import"],
  ["get", "/api/saes/{sae_id}/analysis"], ["post", "/api/saes/{sae_id}/analysis"],
  ["get", "/api/saes/{sae_id}/features"], ["get", "/api/saes/{sae_id}/features/{index}"],
  ["patch", "/api/saes/{sae_id}/features/{index}"], ["post", "/api/saes/{sae_id}/activations"],
  ["post", "/api/saes/{sae_id}/explanations"], ["get", "/api/saes/{sae_id}/explanations/job"],
  ["post", "/api/saes/{sae_id}/explanations/cancel"], ["post", "/api/saes/{sae_id}/explanations/resume"],
  ["post", "/api/saes/{sae_id}/contrast"], ["post", "/api/saes/{sae_id}/contrast/patch"],
  ["get", "/api/patches"], ["post", "/api/patches"], ["patch", "/api/patches/{id}"], ["delete", "/api/patches/{id}"],
  ["get", "/api/patches/{id}/export"], ["post", "/api/patches/import"], ["post", "/api/patches/{id}/evaluate"],
  ["post", "/api/inference"], ["post", "/api/generate"],
  ["get", "/api/provenance"],
  ["get", "/api/saes/{sae_id}/map"], ["post", "/api/saes/{sae_id}/map"], ["get", "/api/saes/{sae_id}/map/job"],
  ["get", "/api/saes/{sae_id}/evals"], ["post", "/api/saes/{sae_id}/evals"], ["get", "/api/saes/{sae_id}/evals/job"],
  ["get", "/api/evals/compare"],
];

const file = resolve(import.meta.dirname, "../../openapi.json");
const have = existsSync(file);

/** "/api/patches/{patch_id}" and "/api/patches/{id}" are the same route. */
const norm = (p: string) => p.replace(/\{[^}]+\}/g, "{}");

describe("OpenAPI contract (ui/openapi.json)", () => {
  it("has every endpoint the UI calls", () => {
    expect(have, `${file} is missing: run python scripts/dump_openapi.py`).toBe(true);
    const schema = JSON.parse(readFileSync(file, "utf8")) as { paths: Record<string, Record<string, unknown>> };
    const routes = new Set(
      Object.entries(schema.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${norm(p)}`)),
    );
    const missing = USED_ENDPOINTS.filter(([m, p]) => !routes.has(`${m} ${norm(p)}`)).map(([m, p]) => `${m.toUpperCase()} ${p}`);
    expect(missing).toEqual([]);
  });
});
