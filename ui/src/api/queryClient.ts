import { QueryClient } from "@tanstack/react-query";
import { ApiError } from "./errors";

/** How many times a failed read is tried again (network failures and 5xx only). */
export const MAX_RETRIES = 3;

/**
 * Whether a failed query is tried again: a 4xx is the server's answer (bad input, not found, not authorised,
 * rate limited) and asking again gives the same answer, so never; a network failure or a 5xx may pass, so up
 * to MAX_RETRIES times (TanStack's exponential delay between tries).
 */
export function shouldRetry(failureCount: number, error: unknown): boolean {
  if (error instanceof ApiError && error.status >= 400 && error.status < 500) return false;
  return failureCount < MAX_RETRIES;
}

/**
 * How long a read counts as fresh (a fresh cache entry is shown without asking the server again when a page
 * mounts). The socket keeps the cache current while the app is open: socketSync.ts invalidates the keys each
 * server event changes, and everything after a reconnect.
 */
export const STALE_MS = 30_000;

export interface QueryClientOptions {
  /** delay before a retry, ms (tests pass 0); TanStack's exponential backoff when left out */
  retryDelay?: number;
}

/** The app's one QueryClient (main.tsx provides it at the root; tests make one per render). */
export function createQueryClient({ retryDelay }: QueryClientOptions = {}): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        retry: shouldRetry,
        ...(retryDelay !== undefined ? { retryDelay } : {}),
        staleTime: STALE_MS,
      },
      // a mutation is not idempotent: the user retries it
      mutations: { retry: false },
    },
  });
}
