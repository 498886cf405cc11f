import { describe, expect, it } from 'vitest'
import { FRESH_MS, prefetch, takePrefetched } from '@/util/prefetch'

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
