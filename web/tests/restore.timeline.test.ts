import { describe, expect, it } from 'vitest'
import {
  baseFor, choose, domainOf, mergeWindows, nearestPoint, position, tickPrecision,
  ticks, timeAt, windowOf,
} from '@/pages/restore/timeline'
import type { Point } from '@/pages/restore/types'

const point = (id: string, time: string): Point => ({ id, short_id: id, time, host: 'h',
  tags: [], paths: [], size: null, repository: 'r' })
const H = 3_600_000
const T0 = Date.parse('2026-12-01T00:00:00Z')
const iso = (ms: number) => new Date(ms).toISOString()
const P = [point('a', iso(T0)), point('b', iso(T0 + 10 * H)), point('c', iso(T0 + 20 * H))]

describe('log windows', () => {
  it('are merged when they overlap or touch, invalid ones dropped, oldest first', () => {
    expect(mergeWindows([
      { kind: 'wal', start: iso(T0 + 5 * H), end: iso(T0 + 8 * H) },
      { kind: 'wal', start: iso(T0), end: iso(T0 + 2 * H) },
      { kind: 'wal', start: iso(T0 + 2 * H), end: iso(T0 + 3 * H) },
      { kind: 'wal', start: iso(T0 + 7 * H), end: iso(T0 + 9 * H) },
      { kind: 'wal', start: iso(T0 + 4 * H), end: iso(T0 + H) },
      { kind: 'wal', start: 'not a time', end: iso(T0) },
    ])).toEqual([{ start: T0, end: T0 + 3 * H }, { start: T0 + 5 * H, end: T0 + 9 * H }])
  })

  it('say which window a moment is in, inclusive of both ends', () => {
    const spans = [{ start: T0, end: T0 + H }]
    expect(windowOf(T0, spans)).toEqual(spans[0])
    expect(windowOf(T0 + H, spans)).toEqual(spans[0])
    expect(windowOf(T0 + H + 1, spans)).toBeNull()
  })
})

describe('the drawn range', () => {
  it('covers every point and window with a margin, and maps both ways', () => {
    const domain = domainOf(P, [{ start: T0 + 18 * H, end: T0 + 30 * H }])
    expect(domain).not.toBeNull()
    if (!domain) return
    expect(domain.start).toBeLessThan(T0)
    expect(domain.end).toBeGreaterThan(T0 + 30 * H)
    expect(position(domain.start, domain)).toBe(0)
    expect(position(domain.end + H, domain)).toBe(1)
    const middle = timeAt(0.5, domain)
    expect(Math.abs(position(middle, domain) - 0.5)).toBeLessThan(1e-6)
    expect(middle % 1000).toBe(0)
  })

  it('has a width for a single snapshot and nothing for none', () => {
    const one = domainOf([P[0] as Point], [])
    expect(one).toEqual({ start: T0 - H, end: T0 + H })
    expect(domainOf([], [])).toBeNull()
  })

  it('puts ticks on whole steps inside the range', () => {
    const marks = ticks({ start: T0 + 1000, end: T0 + 24 * H })
    expect(marks.length).toBeGreaterThanOrEqual(3)
    expect(marks.length).toBeLessThanOrEqual(8)
    for (const m of marks) {
      expect(m).toBeGreaterThanOrEqual(T0 + 1000)
      expect(m % H).toBe(0)
    }
    expect(ticks({ start: T0, end: T0 })).toEqual([])
  })

  it('has ticks and second-precise labels for snapshots seconds apart', () => {
    const close = domainOf([point('a', iso(T0)), point('b', iso(T0 + 7000))], [])
    expect(close).not.toBeNull()
    if (!close) return
    const marks = ticks(close)
    expect(marks.length).toBeGreaterThanOrEqual(3)
    expect(marks.every((m) => m % 1000 === 0)).toBe(true)
    expect(tickPrecision(close)).toBe('second')
    expect(tickPrecision({ start: T0, end: T0 + 24 * H })).toBe('minute')
    expect(tickPrecision({ start: T0, end: T0 + 30 * 24 * H })).toBe('day')
  })
})

describe('choosing a moment', () => {
  const spans = [{ start: T0 + 12 * H, end: T0 + 16 * H }]

  it('outside a window takes the nearest snapshot, the older on a tie', () => {
    expect(nearestPoint(T0 + 4 * H, P)?.id).toBe('a')
    expect(nearestPoint(T0 + 5 * H, P)?.id).toBe('a')
    const found = choose(T0 + 19 * H, P, spans)
    expect(found).toEqual({ kind: 'point', point: P[2], at: T0 + 20 * H })
    expect(choose(T0, [], [])).toBeNull()
  })

  it('inside a window takes that second, from the newest snapshot before it', () => {
    const found = choose(T0 + 13 * H + 1234, P, spans)
    expect(found).toMatchObject({ kind: 'window', at: T0 + 13 * H + 1000 })
    expect(found?.kind === 'window' ? found.base?.id : null).toBe('b')
    expect(baseFor(T0 - 1, P)).toBeNull()
    expect(baseFor(T0 + 10 * H, P)?.id).toBe('b')
  })

})
