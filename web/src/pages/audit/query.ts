// The audit viewer's filters as the query of GET /api/audit and /api/audit/export
// (server/routes/audit.py): empty filters left out, texts trimmed, times as ISO 8601
// with their zone (the server reads a bare date as midnight UTC, so a picked local
// time is sent as an instant).
import { withQuery } from '@/api/client'

export const RESULTS = ['ok', 'denied', 'failed'] as const
export const FORMATS = ['jsonl', 'csv'] as const
export type ExportFormat = (typeof FORMATS)[number]
export const PAGE_SIZE = 50

export interface AuditFilters {
  /** [from, to): Date objects from the picker, or null. */
  range: [Date, Date] | null
  actor: string
  action: string
  institution: string
  result: string
  target: string
}

export function emptyFilters(): AuditFilters {
  return { range: null, actor: '', action: '', institution: '', result: '', target: '' }
}

/** A time as the server reads it: UTC with its Z, whole seconds. */
export function instant(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

export type Query = Record<string, string | number | undefined>

/** The filters as query parameters (no empty one). */
export function filterQuery(filters: AuditFilters): Query {
  const query: Query = {}
  if (filters.range) {
    const [from, to] = filters.range
    if (!Number.isNaN(from.getTime())) query.from = instant(from)
    if (!Number.isNaN(to.getTime())) query.to = instant(to)
  }
  for (const key of ['actor', 'action', 'institution', 'result', 'target'] as const) {
    const value = filters[key].trim()
    if (value) query[key] = value
  }
  return query
}

/** GET /api/audit for a page: `before` is the previous page's next_before_seq. */
export function searchUrl(filters: AuditFilters, before?: number | null,
  limit: number = PAGE_SIZE): string {
  return withQuery('/api/audit', { ...filterQuery(filters), limit, before_seq: before ?? undefined })
}

/** GET /api/audit/export in a format. */
export function exportUrl(filters: AuditFilters, format: ExportFormat): string {
  return withQuery('/api/audit/export', { ...filterQuery(filters), format })
}

/** The file name of a download from its Content-Disposition, else a fallback. */
export function downloadName(disposition: string | null, format: ExportFormat): string {
  const match = /filename="?([^";]+)"?/.exec(disposition ?? '')
  return match ? match[1]! : `medark-audit.${format === 'csv' ? 'csv' : 'jsonl'}`
}

/** A record's detail in one short line (the full JSON is in the expanded row). */
export function detailSummary(detail: Record<string, unknown>, max = 120): string {
  const text = Object.entries(detail)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ')
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}
