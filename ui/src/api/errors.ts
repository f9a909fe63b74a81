/** An HTTP error from the workbench API, with the server's `{"detail": ...}` turned into readable text. */
export class ApiError extends Error {
  readonly status: number;
  readonly detail: unknown;

  constructor(status: number, detail: unknown, fallback = "") {
    super(formatDetail(detail) || fallback || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

interface ValidationItem {
  loc?: (string | number)[];
  msg?: string;
}

/** FastAPI sends either a string or a list of pydantic validation errors as `detail`. */
export function formatDetail(detail: unknown): string {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item: ValidationItem | string) => {
        if (typeof item === "string") return item;
        const loc = (item.loc ?? []).filter((p) => p !== "body" && p !== "query").join(".");
        return loc ? `${loc}: ${item.msg ?? "invalid"}` : (item.msg ?? JSON.stringify(item));
      })
      .join("; ");
  }
  if (typeof detail === "object") {
    const d = detail as Record<string, unknown>;
    if (typeof d.message === "string") return d.message;
    return JSON.stringify(detail);
  }
  return String(detail);
}

/** Human-readable message for anything thrown by a request (network failures included). */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) {
    const prefix =
      err.status === 401 || err.status === 403 ? "Not authorised: "
      : err.status === 429 ? "Rate limited: "
      : err.status === 413 ? "Too large: "
      : err.status >= 500 ? `Server error (${err.status}): `
      : "";
    return prefix + err.message;
  }
  if (err instanceof TypeError) return `Cannot reach the server (${err.message})`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** errorMessage of a query's or mutation's error; null when there is none (what <ErrorMessage> takes). */
export function errorText(err: unknown): string | null {
  return err == null ? null : errorMessage(err);
}
