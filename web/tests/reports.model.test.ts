import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import { messages } from '@/i18n'
import { anyPending, downloadUrl, periodLabel, periods, reportLanguage, reportState } from '@/pages/reports/reportsModel'

const t = (locale: string) => {
  const i18n = createI18n({ legacy: false, locale, messages })
  return (key: string, values?: Record<string, unknown>) => i18n.global.t(key, values ?? {})
}

describe('a report\'s state', () => {
  it('is pending while queued or running, ready when done, else failed', () => {
    expect(['queued', 'running', 'done', 'failed', 'odd'].map(reportState)).toEqual([
      'pending', 'pending', 'ready', 'failed', 'failed'])
  })

  it('keeps the list refreshing only while one is pending', () => {
    expect(anyPending([{ status: 'done' }, { status: 'running' }])).toBe(true)
    expect(anyPending([{ status: 'done' }, { status: 'failed' }])).toBe(false)
    expect(anyPending([])).toBe(false)
  })
})

describe('the periods', () => {
  it('are the last whole months, across a year', () => {
    expect(periods('monthly', new Date('2026-02-10T00:00:00Z'), 3)).toEqual(['2026-01', '2025-12', '2025-11'])
  })

  it('are the last whole quarters', () => {
    expect(periods('quarterly', new Date('2026-12-06T00:00:00Z'), 5)).toEqual([
      '2026-Q3', '2026-Q2', '2026-Q1', '2025-Q4', '2025-Q3'])
    expect(periods('quarterly', new Date('2026-01-01T00:00:00Z'), 1)).toEqual(['2025-Q4'])
  })

  it('read as people say them, in each language', () => {
    expect(periodLabel('2026-Q3', 'zh-CN', t('zh-CN'))).toBe('2026年第3季度')
    expect(periodLabel('2026-Q3', 'en', t('en'))).toBe('Q3 2026')
    expect(periodLabel('2026-11', 'en', t('en'))).toBe('November 2026')
    expect(periodLabel('2026-11', 'zh-CN', t('zh-CN'))).toBe('2026年11月')
    expect(periodLabel('garbage', 'en', t('en'))).toBe('garbage')
  })
})

describe('download and language', () => {
  it('downloads from the report\'s own URL and matches the console\'s language', () => {
    expect(downloadUrl({ id: 7 })).toBe('/api/reports/7/download')
    expect(reportLanguage('zh-CN')).toBe('zh')
    expect(reportLanguage('en')).toBe('en')
  })
})
