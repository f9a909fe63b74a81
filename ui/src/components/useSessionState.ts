import { useEffect, useState } from "react";

/**
 * A string kept in sessionStorage under `key`: it survives leaving and revisiting a page within the browser
 * session (the Patch console's prompt), and starts from `initial` in a new session.
 */
export function useSessionState(key: string, initial: string): [string, (v: string) => void] {
  const [value, setValue] = useState<string>(() => {
    try {
      return sessionStorage.getItem(key) ?? initial;
    } catch {
      return initial;
    }
  });
  useEffect(() => {
    try {
      sessionStorage.setItem(key, value);
    } catch {
      /* storage unavailable: keep it in memory only */
    }
  }, [key, value]);
  return [value, setValue];
}

/** `value`, updated only after it has stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
