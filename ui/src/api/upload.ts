import { ApiError } from "./errors";
import { API_KEY_HEADER, getStoredToken } from "./auth";

/** Bytes sent so far of an upload, and its size (null when the browser cannot tell). */
export interface UploadProgress {
  loaded: number;
  total: number | null;
}

/**
 * POST a multipart form with upload progress. fetch() reports none, so this one request goes through
 * XMLHttpRequest: `onProgress` gets the bytes sent as they leave; the answer is parsed as JSON like request()
 * does, and a non-2xx answer rejects with the same ApiError (a network failure with a TypeError).
 */
export function uploadWithProgress<T>(
  path: string, form: FormData, onProgress?: (p: UploadProgress) => void, signal?: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Accept", "application/json");
    const token = getStoredToken();
    if (token) xhr.setRequestHeader(API_KEY_HEADER, token);
    xhr.upload.onprogress = (e) => onProgress?.({ loaded: e.loaded, total: e.lengthComputable ? e.total : null });
    xhr.onload = () => {
      const text = xhr.responseText ?? "";
      let json: unknown = undefined;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = text || null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(json as T);
      else {
        const detail = json && typeof json === "object" && "detail" in json ? (json as { detail: unknown }).detail : json;
        reject(new ApiError(xhr.status, detail ?? null, xhr.statusText));
      }
    };
    xhr.onerror = () => reject(new TypeError("Network error while uploading"));
    xhr.onabort = () => reject(new DOMException("Upload cancelled", "AbortError"));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}
