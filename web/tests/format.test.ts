import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import { messages } from '@/i18n'
import type { Job } from '@/api/types'
import { displayTimeZone, etaSeconds, formatBytes, formatDateTime, formatDuration,
  progressPercent, setDisplayTimeZone } from '@/util/format'

const i18n = createI18n({ legacy: false, locale: 'en', messages })
const t = (key: string, values?: Record<string, unknown>) => i18n.global.t(key, values ?? {})

const running = (progress: Job['progress'], started_at: string | null = null) => ({
  status: 'running' as const, progress, started_at })
const progress = (fields: Partial<NonNullable<Job['progress']>>): NonNullable<Job['progress']> =>
  ({ percent: null, bytes_done: null, bytes_total: null, eta_seconds: null, message: '',
    ...fields })

describe('progress', () => {
  it('is the reported percentage, bounded, one decimal', () => {
    expect(progressPercent(progress({ percent: 42.04 }))).toBe(42)
    expect(progressPercent(progress({ percent: 140 }))).toBe(100)
    expect(progressPercent(progress({ percent: -3 }))).toBe(0)
  })

  it('comes from the bytes when there is no percentage', () => {
    expect(progressPercent(progress({ bytes_done: 256, bytes_total: 1024 }))).toBe(25)
  })

  it('is unknown without either', () => {
    expect(progressPercent(null)).toBeNull()
    expect(progressPercent(progress({ bytes_done: 5 }))).toBeNull()
  })
})

describe('the ETA', () => {
  it('is the agent\'s own estimate when it gives one', () => {
    expect(etaSeconds(running(progress({ percent: 10, eta_seconds: 31 })))).toBe(31)
  })

  it('is worked out from the percentage and the time since the start otherwise', () => {
    const now = Date.parse('2026-12-06T08:10:00Z')
    const eta = etaSeconds(running(progress({ percent: 25 }), '2026-12-06T08:00:00Z'), now)
    expect(eta).toBe(1800)
  })

  it('is none for a job that is not running or reports nothing', () => {
    expect(etaSeconds({ status: 'succeeded', progress: progress({ eta_seconds: 3 }),
      started_at: null })).toBeNull()
    expect(etaSeconds(running(null))).toBeNull()
    expect(etaSeconds(running(progress({ percent: 0 }), '2026-12-06T08:00:00Z'))).toBeNull()
  })

  it('reads as a duration in the language', () => {
    expect(formatDuration(45, t)).toBe('45 s')
    expect(formatDuration(185, t)).toBe('3 min 05 s')
    expect(formatDuration(7800, t)).toBe('2 h 10 min')
    expect(formatDuration(null, t)).toBe('')
    i18n.global.locale.value = 'zh-CN'
    expect(formatDuration(185, t)).toBe('3 分 05 秒')
    i18n.global.locale.value = 'en'
  })
})

describe('sizes and times', () => {
  it('sizes in binary units', () => {
    expect(formatBytes(0, 'en')).toBe('0 B')
    expect(formatBytes(1536, 'en')).toBe('1.5 KiB')
    expect(formatBytes(5 * 1024 ** 3, 'zh-CN')).toBe('5.0 GiB')
    expect(formatBytes(null, 'en')).toBe('')
  })

  it('times in the given time zone and the locale\'s form', () => {
    const at = '2026-12-06T05:30:01Z'
    expect(formatDateTime(at, 'zh-CN', 'Asia/Shanghai')).toBe('2026/12/06 13:30:01')
    expect(formatDateTime(at, 'en', 'UTC')).toBe('12/06/2026, 05:30:01')
    expect(formatDateTime(null, 'en')).toBe('')
  })
})

describe('the display time zone', () => {
  it('is the hospital\'s once the server names it, whatever the browser\'s', () => {
    setDisplayTimeZone('Asia/Urumqi')
    expect(displayTimeZone()).toBe('Asia/Urumqi')
    expect(formatDateTime('2026-12-06T00:30:00Z', 'en')).toBe('12/06/2026, 06:30:00')
    setDisplayTimeZone('Mars/Olympus')
    expect(displayTimeZone()).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC')
    setDisplayTimeZone(null)
  })
})
