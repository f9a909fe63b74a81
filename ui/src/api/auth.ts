/** The API key, if the user stored one (Settings in the header). REST sends it as a header, the socket as ?token=. */
export const TOKEN_STORAGE_KEY = "iwb.token";
export const API_KEY_HEADER = "X-API-Key";

export function getStoredToken(): string | null {
  try {
    const t = globalThis.localStorage?.getItem(TOKEN_STORAGE_KEY);
    return t ? t : null;
  } catch {
    return null;
  }
}

export function setStoredToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_STORAGE_KEY, token);
  else localStorage.removeItem(TOKEN_STORAGE_KEY);
}
