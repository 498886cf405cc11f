import { describe, expect, it } from 'vitest'
import { FRESH_MS, prefetch, prefetchAtStart, takePrefetched } from '@/util/prefetch'

describe('a page\'s data asked for while its chunk loads', () => {
  it('is taken once by the page, when fresh', async () => {
    const asked: string[] = []
    prefetch('/api/x', 1000, async (path) => {
      asked.push(path)
      return { ok: path }
    })
    expect(asked).toEqual(['/api/x'])
    const answer = takePrefetched<{ ok: string }>('/api/x', 1000 + FRESH_MS - 1)
    expect(await answer).toEqual({ ok: '/api/x' })
    expect(takePrefetched('/api/x', 1000)).toBeNull()  // once only
  })

  it('is not taken when stale or never asked for: the page asks again', () => {
    prefetch('/api/y', 1000, async () => 'old')
    expect(takePrefetched('/api/y', 1000 + FRESH_MS + 1)).toBeNull()
    expect(takePrefetched('/api/never')).toBeNull()
  })

  it('keeps a failure for the page to see, never an unhandled rejection', async () => {
    prefetch('/api/z', 1000, async () => {
      throw new Error('down')
    })
    await new Promise((resolve) => setTimeout(resolve, 0))
    await expect(takePrefetched('/api/z', 1001)).rejects.toThrow('down')
  })
})

describe('a page opened at its address asks at the console\'s start', () => {
  const signedIn = 'medark_csrf=abc; other=1'

  it('starts the data at once and the chunks after, once', async () => {
    const asked: string[] = []
    let chunks = 0
    const started = prefetchAtStart('/page-a', '/api/a', () => chunks++, '/page-a/', signedIn,
      async (path) => {
        asked.push(path)
        return path
      })
    expect(started).toBe(true)
    expect(asked).toEqual(['/api/a'])
    expect(chunks).toBe(0)  // after the guard's GET /api/me is sent
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(chunks).toBe(1)
    prefetch('/api/a', Date.now(), async (path) => {
      asked.push(path)
      return 'again'
    })
    expect(asked).toEqual(['/api/a'])  // the route's loader does not ask twice
    expect(await takePrefetched('/api/a')).toBe('/api/a')
  })

  it('does nothing at another address or without a session', () => {
    const never = async () => {
      throw new Error('asked')
    }
    expect(prefetchAtStart('/page-b', '/api/b', () => undefined, '/other', signedIn, never))
      .toBe(false)
    expect(prefetchAtStart('/page-b', '/api/b', () => undefined, '/page-b', 'other=1', never))
      .toBe(false)
    expect(takePrefetched('/api/b')).toBeNull()
  })

  it('drops a refusal: the page asks again after the sign-in', async () => {
    prefetchAtStart('/page-c', '/api/c', () => undefined, '/page-c', signedIn, async () => {
      throw new Error('401')
    })
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(takePrefetched('/api/c')).toBeNull()
  })
})
