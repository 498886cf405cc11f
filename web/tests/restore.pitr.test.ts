import { describe, expect, it } from 'vitest'
import {
  dayHasWindow, disabledHours, disabledMinutes, disabledSeconds, formatWall, nearestWindow,
  offsetLabel, parseWall, sourcesAt, targetsFor, utcIso, wallToUtc, zoneOffset,
} from '@/pages/restore/pitr'
import type { LogWindow } from '@/pages/restore/types'

const SH = 'Asia/Shanghai'
const NY = 'America/New_York'
const at = (iso: string) => Date.parse(iso)

describe('the hospital clock', () => {
  it('reads and writes wall times in the hospital zone, whatever the PC zone', () => {
    expect(parseWall('2026-12-06 18:15:30', SH)).toBe(at('2026-12-06T10:15:30Z'))
    expect(parseWall(' 2026-12-06T18:15:30 ', SH)).toBe(at('2026-12-06T10:15:30Z'))
    expect(formatWall(at('2026-12-06T10:15:30Z'), SH)).toBe('2026-12-06 18:15:30')
    // across midnight and the year
    expect(formatWall(at('2026-12-31T16:00:00Z'), SH)).toBe('2027-01-01 00:00:00')
    expect(parseWall('2027-01-01 00:00:00', SH)).toBe(at('2026-12-31T16:00:00Z'))
    expect(parseWall('2026-12-06 18:15:30', 'UTC')).toBe(at('2026-12-06T18:15:30Z'))
    expect(zoneOffset(at('2026-12-06T10:15:30Z'), SH)).toBe(8 * 3_600_000)
    expect(offsetLabel(at('2026-12-06T10:15:30Z'), SH)).toBe('UTC+08:00')
    expect(offsetLabel(at('2026-12-06T10:15:30Z'), NY)).toBe('UTC-05:00')
    expect(offsetLabel(0, 'Asia/Kolkata')).toBe('UTC+05:30')
  })

  it('sends UTC to the second with a Z', () => {
    expect(utcIso(at('2026-12-06T10:15:30.987Z'))).toBe('2026-12-06T10:15:30Z')
    const typed = parseWall('2026-07-01 08:00:00', NY)
    expect(typeof typed === 'number' && utcIso(typed)).toBe('2026-07-01T12:00:00Z')
  })

  it('refuses what is not YYYY-MM-DD HH:mm:ss or no such date', () => {
    for (const text of ['', '2026-12-06', '2026-12-06 18:15', '06/12/2026 18:15:30',
      '2026-02-30 10:00:00', '2026-13-01 10:00:00', '2026-12-06 24:00:00',
      '2026-12-06 18:60:00', '2026-12-06 18:15:30Z']) {
      expect(parseWall(text, SH), text).toBe('format')
    }
  })

  it('keeps daylight saving straight: a skipped time is refused, a repeated one is the first', () => {
    // 2026-03-08 02:30 does not exist in New York; 2026-11-01 01:30 happens twice
    expect(parseWall('2026-03-08 02:30:00', NY)).toBe('skipped')
    expect(parseWall('2026-03-08 03:30:00', NY)).toBe(at('2026-03-08T07:30:00Z'))
    expect(parseWall('2026-11-01 01:30:00', NY)).toBe(at('2026-11-01T05:30:00Z'))
    expect(formatWall(at('2026-11-01T06:30:00Z'), NY)).toBe('2026-11-01 01:30:00')
    expect(wallToUtc({ year: 2026, month: 3, day: 8, hour: 2, minute: 30, second: 0 }, NY))
      .toBe(at('2026-03-08T07:30:00Z'))
  })
})

describe('outside the windows', () => {
  const W1 = { start: at('2026-12-06T00:00:00Z'), end: at('2026-12-06T04:00:00Z') }
  const W2 = { start: at('2026-12-06T10:00:00Z'), end: at('2026-12-06T12:00:00Z') }

  it('names the nearest window and its nearest end', () => {
    expect(nearestWindow(at('2026-12-06T05:00:00Z'), [W1, W2]))
      .toEqual({ window: W1, bound: W1.end })
    expect(nearestWindow(at('2026-12-06T09:00:00Z'), [W1, W2]))
      .toEqual({ window: W2, bound: W2.start })
    expect(nearestWindow(at('2026-12-05T00:00:00Z'), [W1, W2])?.bound).toBe(W1.start)
    expect(nearestWindow(at('2026-12-07T00:00:00Z'), [W1, W2])?.bound).toBe(W2.end)
    // halfway between: the later window
    expect(nearestWindow(at('2026-12-06T07:00:00Z'), [W1, W2])?.window).toEqual(W2)
    expect(nearestWindow(0, [])).toBeNull()
  })

  it('disables the days, hours, minutes and seconds of the hospital clock without a window', () => {
    // W1 is 08:00-12:00 and W2 18:00-20:00 on 2026-12-06 in Shanghai
    expect(dayHasWindow(2026, 12, 6, SH, [W1, W2])).toBe(true)
    expect(dayHasWindow(2026, 12, 5, SH, [W1, W2])).toBe(false)
    expect(dayHasWindow(2026, 12, 7, SH, [W1, W2])).toBe(false)
    const day = { year: 2026, month: 12, day: 6 }
    const open = Array.from({ length: 24 }, (_, h) => h)
      .filter((h) => !disabledHours(day, SH, [W1, W2]).includes(h))
    expect(open).toEqual([8, 9, 10, 11, 12, 18, 19, 20])
    // 12:00:00 is the last second of W1
    expect(disabledMinutes({ ...day, hour: 12 }, SH, [W1, W2]).length).toBe(59)
    expect(disabledSeconds({ ...day, hour: 12, minute: 0 }, SH, [W1, W2]).length).toBe(59)
    expect(disabledMinutes({ ...day, hour: 9 }, SH, [W1, W2])).toEqual([])
    // the same windows seen from UTC: the 6th only, hours 0-4 and 10-12
    expect(disabledHours(day, 'UTC', [W1, W2]).length).toBe(24 - 8)
  })
})

describe('what a second restores', () => {
  const win = (plan: string, source: string, start: string, end: string, extra: Partial<LogWindow> = {}
  ): LogWindow => ({ kind: 'wal', start, end, plan, source, base: 'abcd1234', agent: 'a1',
    gap_after: false, reported_at: '2026-12-06T12:00:00Z', ...extra })

  it('is each plan source whose window holds it, once', () => {
    const windows = [
      win('his', 'db', '2026-12-06T00:00:00Z', '2026-12-06T04:00:00Z'),
      win('his', 'db', '2026-12-06T03:00:00Z', '2026-12-06T06:00:00Z',
        { reported_at: '2026-12-06T12:05:00Z', base: 'ffff0000', gap_after: true }),
      win('lis', 'mysql', '2026-12-06T02:00:00Z', '2026-12-06T05:00:00Z', { kind: 'binlog', agent: 'a2' }),
      { kind: 'wal', start: '2026-12-06T00:00:00Z', end: '2026-12-06T23:00:00Z' },
    ]
    const found = sourcesAt(at('2026-12-06T03:30:00Z'), windows)
    expect(found.map((s) => [s.plan, s.source, s.kind, s.base, s.agent, s.gapAfter])).toEqual([
      ['his', 'db', 'wal', 'ffff0000', 'a1', true], ['lis', 'mysql', 'binlog', 'abcd1234', 'a2', false]])
    expect(sourcesAt(at('2026-12-06T05:30:00Z'), windows).map((s) => s.plan)).toEqual(['his'])
    // both ends are inside
    expect(sourcesAt(at('2026-12-06T06:00:00Z'), windows).length).toBe(1)
    expect(sourcesAt(at('2026-12-06T06:00:01Z'), windows)).toEqual([])
  })

  it('goes to a target of the agent that reported the window', () => {
    const agents = [{ agent: 'a1', state: 'offline', targets: ['pg-restore'] },
      { agent: 'a2', state: 'online', targets: ['scratch', 'pg-restore'] }]
    expect(targetsFor('a1', agents)).toEqual(['pg-restore'])
    expect(targetsFor('a3', agents)).toEqual(['scratch', 'pg-restore'])
    expect(targetsFor('', [])).toEqual([])
  })
})
