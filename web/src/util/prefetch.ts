// A page's first GET asked for while its chunk loads (a route's component loader calls
// `prefetch`), so the request and the download overlap instead of following each other;
// the page then takes the answer (`takePrefetched`) if it is fresh, else asks again.
// Used by the dashboard and the topology (issue 17: usable within 1.5 s of a cold load).
import { api, ApiClient, CSRF_COOKIE, readCookie } from '@/api/client'

interface Pending {
  at: number
  answer: Promise<unknown>
}

const pending = new Map<string, Pending>()
/** A client without the console's sign-out handler: a 401 at the start is the guard's. */
const quiet = new ApiClient()
export const FRESH_MS = 5000

/** Start GET `path` now, unless a fresh one is under way (asked for at the console's
 * start); a failure is the page's to see when it takes it. */
export function prefetch(path: string, now: number = Date.now(),
  get: (path: string) => Promise<unknown> = (p) => api.get(p)): void {
  const found = pending.get(path)
  if (found && now - found.at <= FRESH_MS) return
  const answer = get(path)
  answer.catch(() => undefined)  // not unhandled while no page has taken it
  pending.set(path, { at: now, answer })
}

/** At the console's start (an area's module is evaluated with the main bundle): when the
 * address is the page's and a session looks signed in (its CSRF cookie), ask for the
 * page's data now and its chunks right after the guard's GET /api/me is sent (ahead of
 * them in the browser's six connections), not after the answer.
 * A refusal (the session ended) is dropped, not shown: the guard sends the user to the
 * login, and the page asks again afterwards. True when it started them. */
export function prefetchAtStart(page: string, path: string, chunks: () => unknown,
  here: string = location.pathname, cookies: string = document.cookie,
  get: (path: string) => Promise<unknown> = (p) => quiet.get(p)): boolean {
  if (here.replace(/\/+$/, '') !== page || readCookie(cookies, CSRF_COOKIE) === null) return false
  prefetch(path, Date.now(), get)
  const started = pending.get(path)
  started?.answer.catch(() => {
    if (pending.get(path) === started) pending.delete(path)
  })
  setTimeout(chunks, 0)  // after the guard's GET /api/me: the browser's 6 connections
  return true
}

/** The answer prefetched for `path` if it was asked for less than FRESH_MS ago (once). */
export function takePrefetched<T>(path: string, now: number = Date.now()): Promise<T> | null {
  const found = pending.get(path)
  pending.delete(path)
  if (!found || now - found.at > FRESH_MS) return null
  return found.answer as Promise<T>
}
