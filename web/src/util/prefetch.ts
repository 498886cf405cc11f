// A page's first GET asked for while its chunk loads (a route's component loader calls
// `prefetch`), so the request and the download overlap instead of following each other;
// the page then takes the answer (`takePrefetched`) if it is fresh, else asks again.
// Used by the dashboard and the topology (issue 17: usable within 1.5 s of a cold load).
import { api } from '@/api/client'

interface Pending {
  at: number
  answer: Promise<unknown>
}

const pending = new Map<string, Pending>()
export const FRESH_MS = 5000

/** Start GET `path` now; a failure is the page's to see when it takes it. */
export function prefetch(path: string, now: number = Date.now(),
  get: (path: string) => Promise<unknown> = (p) => api.get(p)): void {
  const answer = get(path)
  answer.catch(() => undefined)  // not unhandled while no page has taken it
  pending.set(path, { at: now, answer })
}

/** The answer prefetched for `path` if it was asked for less than FRESH_MS ago (once). */
export function takePrefetched<T>(path: string, now: number = Date.now()): Promise<T> | null {
  const found = pending.get(path)
  pending.delete(path)
  if (!found || now - found.at > FRESH_MS) return null
  return found.answer as Promise<T>
}
