// The dashboard's logic, apart from Vue: how each status and link state looks (colour,
// icon AND word: colour is never the only signal), ages and lags as people say them, and
// the dashboard document turned into what the page draws (institutions with their
// systems, gravest first). Also used by the topology (pages/topology/).
import type { Counts, Dashboard, InstitutionSummary, LinkState, Rpo, SystemState,
  SystemStatus } from './types'

export type Translate = (key: string, values?: Record<string, unknown>) => string
export type Tone = 'success' | 'warning' | 'danger' | 'info'
export type IconName = 'ok' | 'warning' | 'critical' | 'unknown'

export interface Look {
  tone: Tone
  /** A colour for charts and lights (WCAG AA on white for text of this colour). */
  color: string
  icon: IconName
  /** The i18n key of the word. */
  label: string
}

export const COLORS = {
  success: '#1e7e34',
  warning: '#b35c00',
  danger: '#c62828',
  info: '#6b7280',
} as const

export const STATUS_ORDER: readonly SystemStatus[] = ['critical', 'warning', 'unknown', 'ok']

export function statusLook(status: string | null | undefined): Look {
  switch (status) {
    case 'ok': return { tone: 'success', color: COLORS.success, icon: 'ok', label: 'dashboard.status.ok' }
    case 'warning': return { tone: 'warning', color: COLORS.warning, icon: 'warning', label: 'dashboard.status.warning' }
    case 'critical': return { tone: 'danger', color: COLORS.danger, icon: 'critical', label: 'dashboard.status.critical' }
    default: return { tone: 'info', color: COLORS.info, icon: 'unknown', label: 'dashboard.status.unknown' }
  }
}

export function linkLook(state: LinkState | string | null | undefined): Look {
  switch (state) {
    case 'ok': return { tone: 'success', color: COLORS.success, icon: 'ok', label: 'dashboard.link.ok' }
    case 'lagging': return { tone: 'warning', color: COLORS.warning, icon: 'warning', label: 'dashboard.link.lagging' }
    case 'broken': return { tone: 'danger', color: COLORS.danger, icon: 'critical', label: 'dashboard.link.broken' }
    default: return { tone: 'info', color: COLORS.info, icon: 'unknown', label: 'dashboard.link.unknown' }
  }
}

/** An age or a lag, short: "45 秒", "12 分", "3 小时 5 分", "2 天 4 小时"; '' for none.
 * Its spaces do not break ("1 h" never splits over two lines of a narrow tile). */
export function formatAge(seconds: number | null | undefined, t: Translate): string {
  return ageText(seconds, t).replace(/ /g, '\u00a0')
}

function ageText(seconds: number | null | undefined, t: Translate): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return ''
  const total = Math.max(0, Math.round(seconds))
  if (total < 60) return t('dashboard.units.s', { n: total })
  if (total < 3600) return t('dashboard.units.min', { n: Math.floor(total / 60) })
  if (total < 86400) {
    const h = Math.floor(total / 3600)
    const m = Math.floor((total % 3600) / 60)
    return m ? t('dashboard.units.hMin', { h, m }) : t('dashboard.units.h', { n: h })
  }
  const d = Math.floor(total / 86400)
  const h = Math.floor((total % 86400) / 3600)
  return h ? t('dashboard.units.dH', { d, h }) : t('dashboard.units.d', { n: d })
}

/** How long ago an ISO time was, as an age ("3 小时前"); '' for none. */
export function formatAgo(iso: string | null | undefined, now: number, t: Translate): string {
  if (!iso) return ''
  const at = Date.parse(iso)
  if (Number.isNaN(at)) return ''
  const seconds = (now - at) / 1000
  if (seconds < 30) return t('dashboard.justNow')
  return t('dashboard.ago', { age: formatAge(seconds, t) }).replace(/ /g, '\u00a0')
}

export type Level = 'ok' | 'warning' | 'critical' | 'unknown'

export interface RpoView {
  /** The achieved RPO now (the server's figure aged by the time since it answered). */
  achieved: number | null
  target: number | null
  /** achieved / target, for a bar (capped at 1 for its width); null without both. */
  ratio: number | null
  level: Level
  /** The achieved RPO is over the tier's limit but within the plan's target. */
  overTier: boolean
  text: string
}

/** The achieved RPO against its target. `elapsed`: seconds since the server measured it
 * (the page ticks, so an age keeps growing between two reads). */
export function rpoView(rpo: Rpo, elapsed: number, t: Translate): RpoView {
  const achieved = rpo.achieved_seconds === null ? null : rpo.achieved_seconds + Math.max(0, elapsed)
  const target = rpo.target_seconds
  const ratio = achieved !== null && target ? achieved / target : null
  const tier = rpo.tier_seconds
  const overTier = achieved !== null && tier !== null && achieved > tier
    && (target === null || achieved <= target)
  let level: Level = 'unknown'
  if (ratio !== null) {
    level = ratio > 1 ? (rpo.log_streamed ? 'warning' : 'critical')
      : ratio > 0.8 || overTier ? 'warning' : 'ok'
  } else if (achieved !== null) {
    level = overTier ? 'warning' : 'ok'
  }
  const achievedText = achieved === null ? t('dashboard.none') : formatAge(achieved, t)
  const text = target === null ? achievedText
    : t('dashboard.rpoOf', { achieved: achievedText, target: formatAge(target, t) })
  return { achieved, target, ratio, level, overTier, text }
}

export interface InstitutionGroup {
  institution: InstitutionSummary
  systems: SystemState[]
}

function grave(status: SystemStatus): number {
  const index = STATUS_ORDER.indexOf(status)
  return index < 0 ? STATUS_ORDER.length : index
}

/** Systems gravest first, then by title. */
export function bySeverity(a: SystemState, b: SystemState): number {
  return grave(a.status) - grave(b.status) || b.open_alerts - a.open_alerts
    || a.title.localeCompare(b.title) || a.name.localeCompare(b.name)
}

/** The institutions (those with problems first, then by title) each with its systems,
 * gravest first; `onlyProblems` keeps the systems that are not ok (and the institutions
 * that have one, or a configuration problem). */
export function groupByInstitution(dashboard: Dashboard, onlyProblems = false): InstitutionGroup[] {
  const groups = dashboard.institutions.map((institution) => ({
    institution,
    systems: dashboard.systems
      .filter((s) => s.institution === institution.name && (!onlyProblems || s.status !== 'ok'))
      .sort(bySeverity),
  }))
  const weight = (g: InstitutionGroup) => {
    const s = g.institution.summary
    return s.critical ? 0 : s.warning ? 1 : g.institution.problem ? 2 : s.unknown ? 3 : 4
  }
  return groups
    .filter((g) => !onlyProblems || g.systems.length > 0 || g.institution.problem !== null)
    .sort((a, b) => weight(a) - weight(b)
      || (a.institution.title || a.institution.name).localeCompare(
        b.institution.title || b.institution.name))
}

/** The overall light: the gravest status any system has (unknown only if none is known). */
/** The groups and tiles drawn while at most `limit` tiles are, in the groups' order: a
 * cold load draws the first screen's institution and tiles first, the rest a frame later. */
export function groupsUpTo(groups: InstitutionGroup[], limit: number): InstitutionGroup[] {
  const drawn: InstitutionGroup[] = []
  let left = limit
  for (const group of groups) {
    if (left <= 0) break
    const systems = group.systems.slice(0, left)
    left -= systems.length
    drawn.push(systems.length === group.systems.length ? group : { ...group, systems })
  }
  return drawn
}

export function overallStatus(counts: Counts): SystemStatus {
  if (counts.critical) return 'critical'
  if (counts.warning) return 'warning'
  if (counts.ok) return 'ok'
  return 'unknown'
}

/** "inst/name", the key a system is found by (the drawer's ?system= query). */
export function systemKey(system: Pick<SystemState, 'institution' | 'name'>): string {
  return `${system.institution}/${system.name}`
}

export function findSystem(dashboard: Dashboard | null, key: string | null | undefined
): SystemState | null {
  if (!dashboard || !key) return null
  return dashboard.systems.find((s) => systemKey(s) === key) ?? null
}

/** The standby's line: its state, lag in seconds and bytes, as far as known. */
export function standbyLag(system: SystemState, t: Translate,
  bytes: (n: number) => string): string {
  const dr = system.dr
  if (!dr) return ''
  const parts = [formatAge(dr.lag_seconds, t), dr.lag_bytes !== null ? bytes(dr.lag_bytes) : '']
    .filter(Boolean)
  return parts.join(' · ')
}

/** Seconds since the dashboard was generated (for ageing its figures), never negative. */
export function elapsedSince(generatedAt: string | null | undefined, now: number): number {
  if (!generatedAt) return 0
  const at = Date.parse(generatedAt)
  return Number.isNaN(at) ? 0 : Math.max(0, (now - at) / 1000)
}
