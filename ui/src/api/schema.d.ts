/**
 * PLACEHOLDER. Regenerate with `npm run gen:api` once the backend has written ui/openapi.json
 * (openapi-typescript overwrites this file; never edit it by hand).
 */
export type paths = Record<string, never>;
export type webhooks = Record<string, never>;
export interface components {
  schemas: never;
  responses: never;
  parameters: never;
  requestBodies: never;
  headers: never;
  pathItems: never;
}
export type $defs = Record<string, never>;
export type operations = Record<string, never>;
