import { readFileSync } from "node:fs";
import { resolve } from "node:path";
// @ts-expect-error - a plain .mjs module shared with scripts/gen-api.mjs
import { renderSchemaTypes } from "../../scripts/gen-api-lib.mjs";

const ui = resolve(import.meta.dirname, "../..");

/**
 * src/api/schema.d.ts (REST and WebSocket types) must be exactly what `npm run gen:api` makes of
 * ui/openapi.json. With tests/test_openapi_snapshot.py (openapi.json == the live server), a message or route
 * that changes on the server without regenerating the UI's types fails a test.
 */
describe("generated API types", () => {
  it("schema.d.ts is up to date with openapi.json (run `npm run gen:api`)", async () => {
    const schema = JSON.parse(readFileSync(resolve(ui, "openapi.json"), "utf8"));
    const want = await renderSchemaTypes(schema);
    const have = readFileSync(resolve(ui, "src/api/schema.d.ts"), "utf8");
    expect(have === want, "src/api/schema.d.ts is stale: run `cd ui && npm run gen:api`").toBe(true);
  }, 30_000);

  it("lists both WebSocket unions with every message type", () => {
    const schema = JSON.parse(readFileSync(resolve(ui, "openapi.json"), "utf8"));
    const comps = schema.components.schemas;
    const types = (union: string) =>
      (comps[union].oneOf as { $ref: string }[]).map((r) => comps[r.$ref.split("/").pop()!].properties.type.const);
    expect(types("WsServerMessage")).toEqual(expect.arrayContaining(["hello", "logits", "training_progress", "job"]));
    expect(types("WsClientMessage")).toEqual(
      expect.arrayContaining(["subscribe_logits", "set_strength", "commit_strength", "ping"]),
    );
  });
});
