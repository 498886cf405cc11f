// Reports (GET /api/reports, POST /api/institutions/{i}/reports): each report's state as
// the page says it (pending while queued or running, ready when done, failed), whether
// the list must be read again, and the periods one may ask for.

export interface ReportView {
  id: number
  institution: string
  kind: 'monthly' | 'quarterly' | string
  period: string
  language: string
  status: string
  config_version: number | null
  file_name: string
  size: number | null
  sha256: string | null
  created_by: string
  created_at: string | null
  started_at: string | null
  finished_at: string | null
  error: string | null
}

export type ReportState = 'pending' | 'ready' | 'failed'

/** queued and running are pending; done is ready; failed (or anything else) failed. */
export function reportState(status: string): ReportState {
  if (status === 'queued' || status === 'running') return 'pending'
  if (status === 'done') return 'ready'
  return 'failed'
}

/** Read the list again while any report is still being made. */
export const anyPending = (reports: readonly Pick<ReportView, 'status'>[]): boolean =>
  reports.some((r) => reportState(r.status) === 'pending')

/** The periods one may ask for, newest first: the last `count` whole months (2026-11) or
 * quarters (2026-Q4) before `now` (the current one has not ended yet), in UTC. */
export function periods(kind: 'monthly' | 'quarterly', now: Date, count = 12): string[] {
  const out: string[] = []
  let year = now.getUTCFullYear()
  if (kind === 'monthly') {
    let month = now.getUTCMonth() // 0-based: the current month; the last whole one is month-1
    for (let i = 0; i < count; i += 1) {
      month -= 1
      if (month < 0) {
        month = 11
        year -= 1
      }
      out.push(`${year}-${String(month + 1).padStart(2, '0')}`)
    }
    return out
  }
  let quarter = Math.floor(now.getUTCMonth() / 3) // 0-based current quarter
  for (let i = 0; i < count; i += 1) {
    quarter -= 1
    if (quarter < 0) {
      quarter = 3
      year -= 1
    }
    out.push(`${year}-Q${quarter + 1}`)
  }
  return out
}

/** A period as people read it: 2026-11 -> "2026 年 11 月" / "November 2026"; 2026-Q3 ->
 * "2026 年第 3 季度" / "Q3 2026". */
export function periodLabel(period: string, locale: string,
  t: (key: string, values?: Record<string, unknown>) => string): string {
  const quarter = /^(\d{4})-Q([1-4])$/.exec(period)
  if (quarter) return t('reports.quarterOf', { year: quarter[1], q: quarter[2] })
  const month = /^(\d{4})-(\d{2})$/.exec(period)
  if (!month) return period
  const when = new Date(Date.UTC(Number(month[1]), Number(month[2]) - 1, 1))
  return new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'long', timeZone: 'UTC' })
    .format(when)
}

/** Where the PDF is downloaded from (the browser sends the session cookie). */
export const downloadUrl = (report: Pick<ReportView, 'id'>): string =>
  `/api/reports/${report.id}/download`

/** The report language that matches the console's. */
export const reportLanguage = (locale: string): 'zh' | 'en' => (locale.startsWith('zh') ? 'zh' : 'en')
