import { ApiError } from "./errors";
import { API_KEY_HEADER, getStoredToken } from "./auth";

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  query?: Query;
  /** JSON body */
  body?: unknown;
  /** multipart body (file uploads) */
  form?: FormData;
  signal?: AbortSignal;
}

function authHeaders(): Record<string, string> {
  const token = getStoredToken();
  return token ? { [API_KEY_HEADER]: token } : {};
}

export function buildUrl(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function readError(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  try {
    const json = JSON.parse(text) as { detail?: unknown };
    return new ApiError(res.status, json.detail ?? json, res.statusText);
  } catch {
    return new ApiError(res.status, text || null, res.statusText);
  }
}

/** Raw request: returns the Response after checking its status (for downloads). */
export async function requestRaw(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders() };
  let body: BodyInit | undefined;
  if (opts.form) body = opts.form;
  else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(buildUrl(path, opts.query), { method, headers, body, signal: opts.signal });
  if (!res.ok) throw await readError(res);
  return res;
}

/** JSON request typed by the caller (see endpoints.ts); 204 gives undefined. */
export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await requestRaw(method, path, opts);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** List endpoints may answer a bare array or `{items: [...]}`; pages accept both. */
export function unwrapList<T>(data: T[] | { items: T[] } | null | undefined): T[] {
  if (!data) return [];
  return Array.isArray(data) ? data : (data.items ?? []);
}
