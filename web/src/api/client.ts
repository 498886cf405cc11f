// The API client: same-origin fetch with the session cookie; an unsafe method carries
// the X-CSRF-Token header read from the medark_csrf cookie (the double-submit token
// POST /api/login set; src/medark/server/deps.py). Errors are the server's
// {"error": {"code", "message", "problems"?}} as an ApiError.

export const CSRF_COOKIE = 'medark_csrf'
export const CSRF_HEADER = 'X-CSRF-Token'
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

export interface Problem {
  field: string
  message: string
}

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly problems: Problem[]
  /** Seconds to wait (Retry-After of a 429), when the server said. */
  readonly retryAfter: number | null

  constructor(status: number, code: string, message: string, problems: Problem[] = [],
    retryAfter: number | null = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.problems = problems
    this.retryAfter = retryAfter
  }
}

/** A cookie's value from a `document.cookie` string, or null. */
export function readCookie(cookies: string, name: string): string | null {
  for (const part of cookies.split(';')) {
    const [key, ...rest] = part.trim().split('=')
    if (key === name) return decodeURIComponent(rest.join('='))
  }
  return null
}

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>

export interface ClientOptions {
  fetch?: Fetch
  cookies?: () => string
  /** Called on 401 (the session ended) so the app can send the user to the login. */
  onUnauthenticated?: (error: ApiError) => void
}

export class ApiClient {
  private readonly fetcher: Fetch
  private readonly cookies: () => string
  onUnauthenticated: ((error: ApiError) => void) | undefined

  constructor(options: ClientOptions = {}) {
    this.fetcher = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
    this.cookies = options.cookies ?? (() => document.cookie)
    this.onUnauthenticated = options.onUnauthenticated
  }

  /** The headers of a request: JSON, and the CSRF token for an unsafe method. */
  headers(method: string, body: boolean): Record<string, string> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (body) headers['Content-Type'] = 'application/json'
    if (!SAFE_METHODS.has(method.toUpperCase())) {
      const token = readCookie(this.cookies(), CSRF_COOKIE)
      if (token) headers[CSRF_HEADER] = token
    }
    return headers
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = {
      method,
      credentials: 'same-origin',
      headers: this.headers(method, body !== undefined),
    }
    if (body !== undefined) init.body = JSON.stringify(body)
    let response: Response
    try {
      response = await this.fetcher(path, init)
    } catch {
      throw new ApiError(0, 'network', 'network error')
    }
    if (response.ok) {
      return (response.status === 204 ? undefined : await response.json()) as T
    }
    const error = await toError(response)
    if (error.status === 401 && path !== '/api/login') this.onUnauthenticated?.(error)
    throw error
  }

  get<T>(path: string, query?: Record<string, string | number | undefined | null>): Promise<T> {
    return this.request<T>('GET', withQuery(path, query))
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body ?? {})
  }
}

export function withQuery(path: string,
  query?: Record<string, string | number | undefined | null>): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value))
  }
  const text = params.toString()
  return text ? `${path}?${text}` : path
}

async function toError(response: Response): Promise<ApiError> {
  const retry = Number(response.headers.get('Retry-After'))
  const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string;
      problems?: Problem[] } }
    const err = body.error ?? {}
    return new ApiError(response.status, err.code ?? `http_${response.status}`,
      err.message ?? response.statusText, err.problems ?? [], retryAfter)
  } catch {
    return new ApiError(response.status, `http_${response.status}`, response.statusText, [],
      retryAfter)
  }
}

/** The console's one client. */
export const api = new ApiClient()
