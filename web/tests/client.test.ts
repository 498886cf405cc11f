import { describe, expect, it } from 'vitest'
import { ApiClient, ApiError, readCookie, withQuery } from '@/api/client'

interface Sent {
  path: string
  init: RequestInit
}

function server(status: number, body: unknown, headers: Record<string, string> = {}) {
  const sent: Sent[] = []
  const fetch = async (path: string, init: RequestInit = {}) => {
    sent.push({ path, init })
    return new Response(body === undefined ? null : JSON.stringify(body),
      { status, headers: { 'Content-Type': 'application/json', ...headers } })
  }
  return { sent, fetch }
}

const COOKIES = 'other=1; medark_csrf=tok%2Den; x=y'

describe('the CSRF header', () => {
  it('goes with every unsafe method, from the medark_csrf cookie', async () => {
    const { sent, fetch } = server(200, { ok: true })
    const client = new ApiClient({ fetch, cookies: () => COOKIES })
    await client.post('/api/jobs', { plan: 'p' })
    await client.request('PATCH', '/api/users/x', {})
    await client.request('DELETE', '/api/tokens/x')
    for (const { init } of sent) {
      expect((init.headers as Record<string, string>)['X-CSRF-Token']).toBe('tok-en')
      expect(init.credentials).toBe('same-origin')
    }
    expect(sent[0]?.init.body).toBe('{"plan":"p"}')
  })

  it('does not go with a GET', async () => {
    const { sent, fetch } = server(200, { jobs: [] })
    await new ApiClient({ fetch, cookies: () => COOKIES }).get('/api/jobs', { limit: 5 })
    expect(sent[0]?.path).toBe('/api/jobs?limit=5')
    expect((sent[0]?.init.headers as Record<string, string>)['X-CSRF-Token']).toBeUndefined()
  })

  it('is left out when there is no cookie (the server answers csrf_failed)', async () => {
    const { sent, fetch } = server(200, {})
    await new ApiClient({ fetch, cookies: () => '' }).post('/api/logout')
    expect((sent[0]?.init.headers as Record<string, string>)['X-CSRF-Token']).toBeUndefined()
  })

  it('reads cookies exactly by name', () => {
    expect(readCookie(COOKIES, 'medark_csrf')).toBe('tok-en')
    expect(readCookie('xmedark_csrf=a', 'medark_csrf')).toBeNull()
    expect(readCookie('', 'medark_csrf')).toBeNull()
  })
})

describe('errors', () => {
  it('carry the server code, message, problems and Retry-After', async () => {
    const { fetch } = server(429, { error: { code: 'rate_limited', message: 'slow down' } },
      { 'Retry-After': '42' })
    const error = await new ApiClient({ fetch, cookies: () => '' })
      .post('/api/login', {}).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 429, code: 'rate_limited', message: 'slow down',
      retryAfter: 42 })
  })

  it('call onUnauthenticated on a 401, except for the login itself', async () => {
    const { fetch } = server(401, { error: { code: 'session_expired', message: 'm' } })
    const seen: string[] = []
    const client = new ApiClient({ fetch, cookies: () => '',
      onUnauthenticated: (e) => seen.push(e.code) })
    await client.get('/api/jobs').catch(() => undefined)
    await client.post('/api/login', {}).catch(() => undefined)
    expect(seen).toEqual(['session_expired'])
  })

  it('survive a body that is not JSON', async () => {
    const fetch = async () => new Response('<html>bad gateway</html>', { status: 502,
      statusText: 'Bad Gateway' })
    const error = await new ApiClient({ fetch, cookies: () => '' }).get('/api/x')
      .catch((e: unknown) => e)
    expect(error).toMatchObject({ status: 502, code: 'http_502' })
  })

  it('name a network failure', async () => {
    const fetch = async () => { throw new TypeError('Failed to fetch') }
    const error = await new ApiClient({ fetch, cookies: () => '' }).get('/api/x')
      .catch((e: unknown) => e)
    expect(error).toMatchObject({ status: 0, code: 'network' })
  })
})

describe('query strings', () => {
  it('leave out empty values and encode the rest', () => {
    expect(withQuery('/api/jobs', { status: '', plan: 'a b', limit: 50, x: null }))
      .toBe('/api/jobs?plan=a+b&limit=50')
    expect(withQuery('/api/jobs')).toBe('/api/jobs')
  })
})
