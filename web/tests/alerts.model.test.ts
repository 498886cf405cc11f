import { describe, expect, it } from 'vitest'
import type { SourceFactory, StreamState } from '@/api/events'
import { applyAlertEvent, filterAlerts, openCounts, openSeconds, severityOf,
  type AlertEvent, type AlertView, type Severity } from '@/pages/alerts/alertsModel'
import { followAlerts } from '@/pages/alerts/liveAlerts'

// as the server ranks these kinds (catalog/alert_severity.py)
const RANK: Record<string, Severity> = { suspicious: 'critical', rpo_breach: 'critical',
  job_failed: 'major', dr_lag: 'major', audit_anchor_failed: 'minor' }

const alert = (id: number, kind: string, open = true, fields: Partial<AlertView> = {}): AlertView => ({
  id, institution: 'hosp-a', key: `${kind}:x`, kind, severity: RANK[kind] ?? 'major', plan: 'his',
  summary: `${kind} of his`,
  opened_at: '2026-12-06T00:00:00Z', resolved_at: open ? null : '2026-12-06T01:00:00Z', open,
  details: null, delivery: null, ...fields })

describe('an alert\'s severity', () => {
  it('is the server\'s; anything unknown counts as major', () => {
    expect(severityOf(alert(1, 'suspicious'))).toBe('critical')
    expect(severityOf(alert(2, 'audit_anchor_failed'))).toBe('minor')
    expect(severityOf({ severity: 'urgent' as Severity })).toBe('major')
  })
})

describe('live changes', () => {
  const event = (state: AlertEvent['state'], id: number, resolved_at: string | null = null): AlertEvent => ({
    state, alert: { id, institution: 'hosp-a', key: 'k', kind: 'dr_lag', severity: 'major', plan: 'lis',
      summary: 'lag', opened_at: '2026-12-06T02:00:00Z', resolved_at } })

  it('put an opened alert first, once', () => {
    const list = [alert(2, 'job_failed'), alert(1, 'rpo_breach')]
    const after = applyAlertEvent(applyAlertEvent(list, event('opened', 3)), event('opened', 3))
    expect(after.map((a) => [a.id, a.open])).toEqual([[3, true], [2, true], [1, true]])
  })

  it('close a resolved one where it is, keeping what the list knew', () => {
    const list = [alert(2, 'job_failed', true, { delivery: 'delivered' }), alert(1, 'rpo_breach')]
    const after = applyAlertEvent(list, { state: 'resolved', alert: { ...list[0]!, resolved_at: '2026-12-06T03:00:00Z' } })
    expect(after.map((a) => [a.id, a.open, a.resolved_at, a.delivery])).toEqual([
      [2, false, '2026-12-06T03:00:00Z', 'delivered'], [1, true, null, null]])
  })
})

describe('the filters', () => {
  const list = [alert(4, 'suspicious', false), alert(3, 'job_failed', true, { institution: 'hosp-b' }),
    alert(2, 'audit_anchor_failed'), alert(1, 'rpo_breach', true, { summary: 'LIS RPO' })]

  it('narrow by state, severity, institution and text', () => {
    const ids = (f: Partial<Parameters<typeof filterAlerts>[1]>) => filterAlerts(list, {
      state: 'all', severity: '', institution: '', text: '', ...f }).map((a) => a.id)
    expect(ids({ state: 'open' })).toEqual([3, 2, 1])
    expect(ids({ state: 'resolved' })).toEqual([4])
    expect(ids({ severity: 'critical' })).toEqual([4, 1])
    expect(ids({ state: 'open', severity: 'critical' })).toEqual([1])
    expect(ids({ institution: 'hosp-b' })).toEqual([3])
    expect(ids({ text: ' lis ' })).toEqual([1])
  })

  it('count the open ones by severity', () => {
    expect(openCounts(list)).toEqual({ critical: 1, major: 1, minor: 1 })
  })

  it('say how long an alert was open', () => {
    expect(openSeconds(alert(1, 'x', false), 0)).toBe(3600)
    expect(openSeconds(alert(1, 'x'), Date.parse('2026-12-06T00:00:30Z'))).toBe(30)
  })
})

class FakeSource {
  readyState = 0
  closed = false
  onopen: ((this: EventSource, ev: Event) => unknown) | null = null
  onerror: ((this: EventSource, ev: Event) => unknown) | null = null
  private listeners = new Map<string, ((e: Event) => void)[]>()
  constructor(readonly url: string) {}
  addEventListener(kind: string, listener: (e: Event) => void): void {
    this.listeners.set(kind, [...(this.listeners.get(kind) ?? []), listener])
  }
  close(): void {
    this.closed = true
    this.readyState = 2
  }
  emit(kind: string, data: string): void {
    for (const listener of this.listeners.get(kind) ?? []) listener(new MessageEvent(kind, { data }))
  }
}

describe('the alert stream', () => {
  it('passes alert events on, reloads on ready and resync, ignores the rest', () => {
    let source: FakeSource | null = null
    const open: SourceFactory = (url) => (source = new FakeSource(url)) as never
    const seen: AlertEvent[] = []
    const states: StreamState[] = []
    let reloads = 0
    const close = followAlerts({ onAlert: (e) => seen.push(e), onReload: () => { reloads += 1 },
      onState: (s) => states.push(s) }, open)
    const s = source as unknown as FakeSource
    expect(s.url).toBe('/api/events')
    s.onopen?.call(s as unknown as EventSource, new Event('open'))
    s.emit('ready', '{"cursor": 1}')
    s.emit('alert', JSON.stringify({ state: 'opened', alert: { id: 5, kind: 'dr_lag' } }))
    s.emit('alert', 'not json')
    s.emit('job', '{}')
    s.emit('resync', '{"reason": "x"}')
    expect(seen.map((e) => e.alert.id)).toEqual([5])
    expect(reloads).toBe(2)
    expect(states).toEqual(['connecting', 'live'])
    close()
    expect(s.closed).toBe(true)
  })
})
