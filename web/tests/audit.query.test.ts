import { describe, expect, it } from 'vitest'
import { detailSummary, downloadName, emptyFilters, exportUrl, filterQuery, instant,
  searchUrl } from '@/pages/audit/query'

describe('the audit filters as a query', () => {
  it('leaves out empty filters and trims the rest', () => {
    expect(filterQuery(emptyFilters())).toEqual({})
    const filters = { ...emptyFilters(), actor: '  secadmin ', action: 'user.*', result: 'denied',
      target: ' ' }
    expect(filterQuery(filters)).toEqual({ actor: 'secadmin', action: 'user.*', result: 'denied' })
  })

  it('sends a picked range as instants with their zone', () => {
    const from = new Date('2026-12-01T00:00:00+08:00')
    const to = new Date('2026-12-02T00:00:00+08:00')
    expect(filterQuery({ ...emptyFilters(), range: [from, to] }))
      .toEqual({ from: '2026-11-30T16:00:00Z', to: '2026-12-01T16:00:00Z' })
    expect(instant(new Date('2026-12-06T09:10:11.123Z'))).toBe('2026-12-06T09:10:11Z')
  })

  it('pages back with before_seq and a limit', () => {
    const filters = { ...emptyFilters(), action: 'login' }
    expect(searchUrl(filters)).toBe('/api/audit?action=login&limit=50')
    expect(searchUrl(filters, 120, 20)).toBe('/api/audit?action=login&limit=20&before_seq=120')
  })

  it('exports the same filters in a format', () => {
    const filters = { ...emptyFilters(), institution: 'hosp-a', action: 'user.*' }
    expect(exportUrl(filters, 'csv')).toBe('/api/audit/export?action=user.*&institution=hosp-a&format=csv')
    expect(exportUrl(emptyFilters(), 'jsonl')).toBe('/api/audit/export?format=jsonl')
  })
})

describe('downloads and details', () => {
  it('names the file as the server did, else by its format', () => {
    expect(downloadName('attachment; filename="medark-audit-20261206.csv"', 'csv'))
      .toBe('medark-audit-20261206.csv')
    expect(downloadName(null, 'csv')).toBe('medark-audit.csv')
    expect(downloadName('attachment', 'jsonl')).toBe('medark-audit.jsonl')
  })

  it('says a detail in one short line', () => {
    expect(detailSummary({ reason: 'wrong_password', count: 2 })).toBe('reason=wrong_password count=2')
    expect(detailSummary({ scope: { systems: ['his'] } })).toBe('scope={"systems":["his"]}')
    expect(detailSummary({ text: 'x'.repeat(300) }, 20)).toHaveLength(20)
  })
})
