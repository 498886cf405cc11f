import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import { messages } from '@/i18n'
import { bySeverity, elapsedSince, findSystem, formatAge, formatAgo, groupByInstitution,
  linkLook, overallStatus, rpoView, standbyLag, statusLook, systemKey, groupsUpTo }
  from '@/pages/dashboard/model'
import type { Dashboard, Rpo, SystemState } from '@/pages/dashboard/types'

const i18n = createI18n({ legacy: false, locale: 'en', messages })
const t = (key: string, values?: Record<string, unknown>) => i18n.global.t(key, values ?? {})
/** Ages keep their words together with no-break spaces; compared as plain spaces. */
const sp = (text: string) => text.replace(/\u00a0/g, ' ')
const zhI18n = createI18n({ legacy: false, locale: 'zh-CN', messages })
const tz = (key: string, values?: Record<string, unknown>) => zhI18n.global.t(key, values ?? {})

const rpo = (fields: Partial<Rpo> = {}): Rpo => ({
  achieved_seconds: null, point_at: null, target_seconds: null, target_source: null,
  plan_seconds: null, tier_seconds: null, log_streamed: false, ...fields })

const system = (name: string, fields: Partial<SystemState> = {}): SystemState => ({
  institution: 'hosp-a', name, title: name.toUpperCase(), criticality: 'core', records: '',
  plans: [name], status: 'ok', reasons: [], rpo: rpo(), last_backup: null, restore_test: null,
  offsite: [], offsite_lag_seconds: null, dr: null, open_alerts: 0, ...fields })

const counts = (fields: Partial<Dashboard['summary']> = {}) => ({
  systems: 0, ok: 0, warning: 0, critical: 0, unknown: 0, open_alerts: 0, ...fields })

const institution = (name: string, title: string, summary = counts(),
  problem: Dashboard['institutions'][number]['problem'] = null) => ({
  name, title, timezone: 'Asia/Shanghai', config_version: 1, problem, summary,
  agents: { online: 1, offline: 0 } })

describe('status looks', () => {
  it('gives each status a colour, an icon and a word', () => {
    expect(statusLook('ok')).toMatchObject({ tone: 'success', icon: 'ok', label: 'dashboard.status.ok' })
    expect(statusLook('warning')).toMatchObject({ tone: 'warning', icon: 'warning' })
    expect(statusLook('critical')).toMatchObject({ tone: 'danger', icon: 'critical' })
    expect(statusLook('unknown').icon).toBe('unknown')
    expect(statusLook('something new').label).toBe('dashboard.status.unknown')
    expect(statusLook(null).tone).toBe('info')
  })

  it('gives each link state one, never two states the same colour and icon', () => {
    const states = ['ok', 'lagging', 'broken', 'unknown'].map(linkLook)
    expect(new Set(states.map((l) => l.icon)).size).toBe(4)
    expect(new Set(states.map((l) => l.color)).size).toBe(4)
    expect(linkLook('broken').label).toBe('dashboard.link.broken')
    for (const look of states) expect(t(look.label)).not.toBe(look.label)
  })

  it('is the gravest status for the whole', () => {
    expect(overallStatus(counts({ ok: 3, warning: 1, critical: 1 }))).toBe('critical')
    expect(overallStatus(counts({ ok: 3, warning: 1, unknown: 2 }))).toBe('warning')
    expect(overallStatus(counts({ ok: 3, unknown: 2 }))).toBe('ok')
    expect(overallStatus(counts())).toBe('unknown')
  })
})

describe('ages and lags', () => {
  it('say seconds, minutes, hours and days, short', () => {
    expect(sp(formatAge(45, t))).toBe('45 s')
    expect(sp(formatAge(59.6, t))).toBe('1 min')
    expect(sp(formatAge(12 * 60 + 30, t))).toBe('12 min')
    expect(sp(formatAge(3 * 3600, t))).toBe('3 h')
    expect(sp(formatAge(3 * 3600 + 5 * 60, t))).toBe('3 h 5 min')
    expect(sp(formatAge(2 * 86400 + 4 * 3600 + 59, t))).toBe('2 d 4 h')
    expect(sp(formatAge(86400, t))).toBe('1 d')
    expect(sp(formatAge(3 * 3600 + 5 * 60, tz))).toBe('3 小时 5 分')
  })

  it('never break over two lines', () => {
    expect(formatAge(3 * 3600 + 5 * 60, t)).toBe('3\u00a0h\u00a05\u00a0min')
    expect(formatAge(3 * 3600 + 5 * 60, tz)).not.toContain(' ')
  })

  it('are empty when unknown, never negative', () => {
    expect(sp(formatAge(null, t))).toBe('')
    expect(sp(formatAge(undefined, t))).toBe('')
    expect(sp(formatAge(Number.NaN, t))).toBe('')
    expect(sp(formatAge(-5, t))).toBe('0 s')
  })

  it('say how long ago a time was', () => {
    const now = Date.parse('2026-12-06T10:00:00Z')
    expect(sp(formatAgo('2026-12-06T07:00:00Z', now, t))).toBe('3 h ago')
    expect(formatAgo('2026-12-06T09:59:50Z', now, t)).toBe('just now')
    expect(sp(formatAgo('2026-12-06T07:00:00Z', now, tz))).toBe('3 小时前')
    expect(formatAgo(null, now, t)).toBe('')
    expect(formatAgo('not a time', now, t)).toBe('')
  })

  it('grow with the time since the dashboard was read', () => {
    const now = Date.parse('2026-12-06T10:00:30Z')
    expect(elapsedSince('2026-12-06T10:00:00Z', now)).toBe(30)
    expect(elapsedSince('2026-12-06T10:01:00Z', now)).toBe(0)
    expect(elapsedSince(null, now)).toBe(0)
  })
})

describe('the achieved RPO against its target', () => {
  it('is ok well within the target, a warning near it, critical over it', () => {
    expect(rpoView(rpo({ achieved_seconds: 3600, target_seconds: 86400 }), 0, t))
      .toMatchObject({ level: 'ok', ratio: 3600 / 86400 })
    expect(sp(rpoView(rpo({ achieved_seconds: 3600, target_seconds: 86400 }), 0, t).text))
      .toBe('1 h / target 1 d')
    expect(rpoView(rpo({ achieved_seconds: 80000, target_seconds: 86400 }), 0, t).level)
      .toBe('warning')
    const late = rpoView(rpo({ achieved_seconds: 3 * 86400, target_seconds: 86400 }), 0, t)
    expect(late.level).toBe('critical')
    expect(sp(late.text)).toBe('3 d / target 1 d')
  })

  it('ages by the seconds since the server measured it', () => {
    const view = rpoView(rpo({ achieved_seconds: 500, target_seconds: 600 }), 200, t)
    expect(view.achieved).toBe(700)
    expect(view.level).toBe('critical')
  })

  it('warns over the tier\'s limit within the plan\'s target', () => {
    const view = rpoView(rpo({ achieved_seconds: 7200, target_seconds: 86400, tier_seconds: 600 }), 0, t)
    expect(view).toMatchObject({ level: 'warning', overTier: true })
  })

  it('only warns when a database log streams (the real point may be newer)', () => {
    expect(rpoView(rpo({ achieved_seconds: 7200, target_seconds: 600, log_streamed: true }), 0, t)
      .level).toBe('warning')
  })

  it('is unknown without a successful backup', () => {
    const none = rpoView(rpo({ target_seconds: 600 }), 0, t)
    expect(none).toMatchObject({ level: 'unknown', achieved: null, ratio: null })
    expect(sp(none.text)).toBe('None / target 10 min')
    expect(rpoView(rpo(), 0, t).text).toBe('None')
  })
})

describe('the dashboard as the page draws it', () => {
  const dashboard: Dashboard = {
    generated_at: '2026-12-06T10:00:00Z', institution: null,
    summary: counts({ systems: 4, ok: 2, critical: 1, warning: 1, open_alerts: 1 }),
    institutions: [
      institution('hosp-b', 'B 医院', counts({ systems: 1, ok: 1 })),
      institution('hosp-a', 'A 医院', counts({ systems: 3, ok: 1, critical: 1, warning: 1 })),
      institution('center', '中心', counts(), { code: 'no_configuration', message: 'none' }),
    ],
    systems: [
      system('his', { status: 'ok' }),
      system('pacs', { status: 'critical', reasons: ['rpo_breached'] }),
      system('lis', { status: 'warning', open_alerts: 1 }),
      system('his', { institution: 'hosp-b' }),
    ],
  }

  it('groups systems by institution, institutions with problems first, gravest first', () => {
    const groups = groupByInstitution(dashboard)
    expect(groups.map((g) => g.institution.name)).toEqual(['hosp-a', 'center', 'hosp-b'])
    expect(groups[0]!.systems.map((s) => s.name)).toEqual(['pacs', 'lis', 'his'])
    expect(groups[1]!.systems).toEqual([])
  })

  it('keeps only problems when asked, and institutions that have some', () => {
    const groups = groupByInstitution(dashboard, true)
    expect(groups.map((g) => g.institution.name)).toEqual(['hosp-a', 'center'])
    expect(groups[0]!.systems.map((s) => s.name)).toEqual(['pacs', 'lis'])
  })

  it('draws the first tiles in the groups\' order, then all of them', () => {
    const groups = groupByInstitution(dashboard)
    const names = (drawn: ReturnType<typeof groupsUpTo>) =>
      drawn.map((g) => `${g.institution.name}:${g.systems.map((s) => s.name).join(',')}`)
    expect(names(groupsUpTo(groups, 2))).toEqual(['hosp-a:pacs,lis'])
    expect(names(groupsUpTo(groups, 4))).toEqual(['hosp-a:pacs,lis,his', 'center:', 'hosp-b:his'])
    expect(groupsUpTo(groups, Infinity)).toEqual(groups)
  })

  it('orders by status, then alerts, then title', () => {
    const list = [system('b'), system('a'), system('c', { open_alerts: 2 }),
      system('d', { status: 'unknown' })].sort(bySeverity)
    expect(list.map((s) => s.name)).toEqual(['d', 'c', 'a', 'b'])
  })

  it('finds a system by its key', () => {
    expect(systemKey(dashboard.systems[3]!)).toBe('hosp-b/his')
    expect(findSystem(dashboard, 'hosp-a/pacs')?.status).toBe('critical')
    expect(findSystem(dashboard, 'hosp-a/gone')).toBeNull()
    expect(findSystem(null, 'hosp-a/pacs')).toBeNull()
  })

  it('says a standby\'s lag in time and bytes, as far as known', () => {
    const dr = { standby_site: 'east', primary_site: 'main', current_primary_site: 'main',
      kind: 'postgres', feed: 'stream', state: 'lagging' as const, lag_seconds: 95,
      lag_bytes: 48 * 1024 * 1024, problems: ['lag_over_limit'], agent: 'a', reported_at: null,
      last_drill: null }
    expect(sp(standbyLag(system('lis', { dr }), t, (n) => `${n / 1024 / 1024} MiB`)))
      .toBe('1 min · 48 MiB')
    expect(standbyLag(system('lis', { dr: { ...dr, lag_seconds: null } }), t, String))
      .toBe(String(48 * 1024 * 1024))
    expect(standbyLag(system('his'), t, String)).toBe('')
  })

  it('has a word for every reason code the server sends', () => {
    const codes = ['not_protected', 'no_backup', 'rpo_breached', 'standby_broken',
      'backup_failed', 'rpo_over_tier', 'rpo_log_unmeasured', 'restore_test_failed',
      'restore_test_missing', 'rto_exceeded', 'offsite_broken', 'offsite_lagging',
      'standby_lagging', 'standby_unknown', 'drill_failed', 'drill_overdue', 'alerts_open',
      'no_jobs']
    for (const code of codes) {
      expect(i18n.global.te(`dashboard.reasons.${code}`, 'en')).toBe(true)
      expect(i18n.global.te(`dashboard.reasons.${code}`, 'zh-CN')).toBe(true)
    }
  })
})
