// Alerts (GET /api/alerts) and their live changes (GET /api/events `alert`): each
// alert's severity (the server's, by kind), the list kept current from
// the events, and the page's filters.

export interface AlertView {
  id: number
  institution: string | null
  key: string
  kind: string
  severity: Severity
  plan: string
  summary: string
  opened_at: string
  resolved_at: string | null
  open: boolean
  details: Record<string, unknown> | null
  delivery: string | null
}

export type Severity = 'critical' | 'major' | 'minor'
export const SEVERITIES: readonly Severity[] = ['critical', 'major', 'minor']

/** The alert's severity as the server ranks it (catalog/alert_severity.py: data at risk
 * now is critical, a protection that stopped working major, the rest minor); anything
 * else counts as major: better seen than missed. */
export function severityOf(alert: Pick<AlertView, 'severity'>): Severity {
  return SEVERITIES.includes(alert.severity) ? alert.severity : 'major'
}

/** The `alert` event of GET /api/events. */
export interface AlertEvent {
  state: 'opened' | 'resolved'
  alert: Pick<AlertView, 'id' | 'institution' | 'key' | 'kind' | 'severity' | 'plan' | 'summary'
    | 'opened_at' | 'resolved_at'>
}

/** The list after an event: an opened alert first (once), a resolved one closed where
 * it is (added when not listed yet). Newest first, as the server lists them. */
export function applyAlertEvent(list: readonly AlertView[], event: AlertEvent): AlertView[] {
  const incoming = event.alert
  const known = list.find((a) => a.id === incoming.id)
  const open = event.state === 'opened'
  const merged: AlertView = { details: null, delivery: null, ...known, ...incoming, open,
    resolved_at: open ? null : (incoming.resolved_at ?? known?.resolved_at ?? new Date().toISOString()) }
  const rest = list.filter((a) => a.id !== incoming.id)
  return [merged, ...rest].sort((a, b) => b.id - a.id)
}

export interface AlertFilter {
  state: 'open' | 'resolved' | 'all'
  severity: Severity | ''
  institution: string
  text: string
}

export function filterAlerts(list: readonly AlertView[], filter: AlertFilter): AlertView[] {
  const text = filter.text.trim().toLowerCase()
  return list.filter((a) => (filter.state === 'all' || (filter.state === 'open') === a.open)
    && (!filter.severity || severityOf(a) === filter.severity)
    && (!filter.institution || a.institution === filter.institution)
    && (!text || [a.summary, a.plan, a.kind, a.key].some((s) => s.toLowerCase().includes(text))))
}

/** The open alerts by severity, for the page's summary. */
export function openCounts(list: readonly AlertView[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { critical: 0, major: 0, minor: 0 }
  for (const a of list) if (a.open) counts[severityOf(a)] += 1
  return counts
}

/** How long an alert has been (or was) open, in seconds. */
export function openSeconds(alert: Pick<AlertView, 'opened_at' | 'resolved_at'>, now: number): number | null {
  const start = Date.parse(alert.opened_at)
  const end = alert.resolved_at ? Date.parse(alert.resolved_at) : now
  return Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, (end - start) / 1000) : null
}
