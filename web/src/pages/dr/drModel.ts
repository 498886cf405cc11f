// DR data -> what the page shows: each system's state from its agents' reports
// (GET /api/institutions/{i}/dr), the confirmation rule of the actions that move a system
// between its sites, a DR job's steps with their durations (its events), its history
// (the system's DR jobs, plan `dr:SYSTEM`) and the drill schedule of the configuration.
import type { Job, JobEvent } from '@/api/types'

export type DrState = 'healthy' | 'lagging' | 'broken' | 'unknown'
export type DrAction = 'switchover' | 'failover' | 'failback' | 'drill'
/** The actions of DrRequest (GET /api/openapi.json: switchover, failover, failback, drill). */
export const DR_ACTIONS: readonly DrAction[] = ['switchover', 'failover', 'failback', 'drill']
/** Those that move the system between its sites: the request repeats its name. */
export const CONFIRMED: ReadonlySet<DrAction> = new Set(['switchover', 'failover', 'failback'])
/** Problems that only say the standby is behind (server/dashboard.py LAG_PROBLEMS). */
const LAG_CODES = new Set(['lag_over_limit'])

export interface DrNode {
  configured: string
  site: string
  address: string
  role: string
  reachable: boolean
  error?: string | null
}

/** One system of `medark --json dr status`, as an agent reported it (the fields read). */
export interface DrReported {
  system: string
  kind?: string
  feed?: string
  supported?: boolean
  note?: string
  nodes?: DrNode[]
  lag?: { bytes?: number | null; seconds?: number | null; error?: string | null;
    max_lag_bytes?: number | null; max_lag_seconds?: number | null; over_limit?: string[] }
  healthy?: boolean
  problems?: { code: string; message: string }[]
  last_drill?: DrRecord | null
  last_switch?: DrRecord | null
}

export interface DrRecord {
  kind?: string
  status?: string
  started_at?: string | null
  finished_at?: string | null
  switch_seconds?: number | null
}

export interface DrAgentReport {
  agent: string
  state: string
  dr_systems: string[]
  reported_at: string | null
  systems: DrReported[]
}

export interface DrStatusReply {
  institution: string
  agents: DrAgentReport[]
}

export interface DrSystemRow {
  system: string
  agent: string
  agentOnline: boolean
  reportedAt: string | null
  kind: string
  feed: string
  state: DrState
  primary: DrNode | null
  standbys: DrNode[]
  lagBytes: number | null
  lagSeconds: number | null
  maxLagBytes: number | null
  maxLagSeconds: number | null
  problems: { code: string; message: string }[]
  note: string
  lastDrill: DrRecord | null
  lastSwitch: DrRecord | null
}

const num = (value: unknown): number | null =>
  typeof value === 'number' && Number.isFinite(value) ? value : null

/** A system's state: unknown without a report, while its agent is offline or when DR
 * is not supported there; healthy; lagging when its only problems are lag; else broken. */
export function drState(entry: DrReported | null, agentOnline: boolean): DrState {
  if (!entry || !agentOnline || entry.supported === false) return 'unknown'
  if (entry.healthy === true) return 'healthy'
  const problems = entry.problems ?? []
  const lagOnly = problems.length > 0 && problems.every((p) => LAG_CODES.has(p.code))
  if (lagOnly || (problems.length === 0 && (entry.lag?.over_limit?.length ?? 0) > 0)) {
    return 'lagging'
  }
  return 'broken'
}

/** One row per DR system of the institution: each system its agents name, with the
 * newest report of it (an online agent's first). */
export function drRows(reply: DrStatusReply): DrSystemRow[] {
  const rows = new Map<string, DrSystemRow>()
  const agents = [...reply.agents].sort((a, b) => Number(b.state === 'online')
    - Number(a.state === 'online') || (b.reported_at ?? '').localeCompare(a.reported_at ?? ''))
  for (const agent of agents) {
    const online = agent.state === 'online'
    const names = new Set([...agent.dr_systems, ...agent.systems.map((s) => s.system)])
    for (const name of names) {
      if (rows.has(name)) continue
      const entry = agent.systems.find((s) => s.system === name) ?? null
      const nodes = entry?.nodes ?? []
      rows.set(name, {
        system: name, agent: agent.agent, agentOnline: online,
        reportedAt: entry ? agent.reported_at : null,
        kind: entry?.kind ?? '', feed: entry?.feed ?? '',
        state: drState(entry, online),
        primary: nodes.find((n) => n.role === 'primary') ?? null,
        standbys: nodes.filter((n) => n.role !== 'primary'),
        lagBytes: num(entry?.lag?.bytes), lagSeconds: num(entry?.lag?.seconds),
        maxLagBytes: num(entry?.lag?.max_lag_bytes), maxLagSeconds: num(entry?.lag?.max_lag_seconds),
        problems: entry?.problems ?? [], note: entry?.note ?? '',
        lastDrill: entry?.last_drill ?? null, lastSwitch: entry?.last_switch ?? null,
      })
    }
  }
  return [...rows.values()].sort((a, b) => a.system.localeCompare(b.system))
}

/** The two-step confirmation: an action that moves the system may be sent only when
 * the name typed is exactly the system's (no trimming, case as written); a drill needs
 * none. */
export function canConfirm(action: DrAction, system: string, typed: string): boolean {
  if (!CONFIRMED.has(action)) return true
  return system.length > 0 && typed === system
}

/** The request body of POST .../systems/{system}/dr. */
export function drRequest(action: DrAction, system: string, typed: string):
  { action: DrAction; confirm?: string } {
  return CONFIRMED.has(action) ? { action, confirm: typed === system ? typed : '' } : { action }
}

export interface DrStep {
  name: string
  result: string
  seconds: number | null
  started: string
  detail: string
}

/** The steps a DR job's events carry (log events with `step`), in order; a step sent
 * again (a replay after a reconnection) is kept once. */
export function stepsOf(events: readonly JobEvent[]): DrStep[] {
  const seen = new Set<number>()
  const steps: DrStep[] = []
  for (const event of [...events].sort((a, b) => a.id - b.id)) {
    if (seen.has(event.id)) continue
    seen.add(event.id)
    const step = event.data.step
    if (event.kind !== 'log' || typeof step !== 'object' || step === null) continue
    const s = step as Record<string, unknown>
    steps.push({ name: String(s.name ?? ''), result: String(s.result ?? ''),
      seconds: num(s.seconds), started: String(s.started ?? ''), detail: String(s.detail ?? '') })
  }
  return steps
}

/** The steps a finished DR job keeps in its details (dr_action.steps, else steps). */
export function stepsOfJob(job: Pick<Job, 'details'>): DrStep[] {
  const details = job.details ?? {}
  const action = details.dr_action as { steps?: unknown } | undefined
  const list = Array.isArray(action?.steps) ? action.steps
    : Array.isArray(details.steps) ? details.steps : []
  return (list as Record<string, unknown>[]).filter((s) => typeof s === 'object' && s !== null)
    .map((s) => ({ name: String(s.name ?? ''), result: String(s.result ?? ''),
      seconds: num(s.seconds), started: String(s.started ?? ''), detail: String(s.detail ?? '') }))
}

export type StepLook = 'ok' | 'failed' | 'skipped' | 'other'

/** How a step's result is shown (a word and an icon with each colour). */
export function stepLook(result: string): StepLook {
  const word = result.toLowerCase()
  if (['ok', 'succeeded', 'done', 'passed'].includes(word)) return 'ok'
  if (['failed', 'error', 'rolled_back', 'aborted'].includes(word)) return 'failed'
  if (['skipped', 'not_needed', 'n/a'].includes(word)) return 'skipped'
  return 'other'
}

/** A step's duration: "0.42 s" / "12.3 s" under a minute (DR steps are short and their
 * tenths matter), else "2 min 05 s" / "1 h 02 min"; '' when unknown. */
export function formatStepSeconds(seconds: number | null | undefined, locale: string,
  t: (key: string, values?: Record<string, unknown>) => string): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return ''
  if (seconds < 60) {
    const digits = seconds < 10 ? 2 : 1
    return t('dr.secondsFrac', { n: new Intl.NumberFormat(locale, {
      maximumFractionDigits: digits, minimumFractionDigits: digits }).format(seconds) })
  }
  const total = Math.round(seconds)
  if (total < 3600) {
    return t('units.minutes', { m: Math.floor(total / 60), s: String(total % 60).padStart(2, '0') })
  }
  return t('units.hours', { h: Math.floor(total / 3600),
    m: String(Math.floor((total % 3600) / 60)).padStart(2, '0') })
}

/** The total of the steps' durations (null when none is known). */
export function totalSeconds(steps: readonly DrStep[]): number | null {
  const known = steps.map((s) => s.seconds).filter((s): s is number => s !== null)
  return known.length ? known.reduce((a, b) => a + b, 0) : null
}

/** A DR job's action (its kind dr_switchover, ..., or the agent's own `drill`). */
export function actionOfJob(kind: string): DrAction | null {
  const bare = kind.startsWith('dr_') ? kind.slice(3) : kind
  return (DR_ACTIONS as readonly string[]).includes(bare) ? bare as DrAction : null
}

export interface HistoryRow {
  id: number
  action: DrAction | null
  kind: string
  status: Job['status']
  requestedBy: string | null
  at: string | null
  finishedAt: string | null
  switchSeconds: number | null
  steps: number
  error: string | null
}

/** A system's DR jobs (GET /api/jobs?plan=dr:SYSTEM), newest first, as history rows. */
export function historyRows(jobs: readonly Job[]): HistoryRow[] {
  return jobs.filter((j) => actionOfJob(j.kind) !== null).map((job) => {
    const action = (job.details?.dr_action ?? null) as { switch_seconds?: unknown } | null
    return { id: job.id, action: actionOfJob(job.kind), kind: job.kind, status: job.status,
      requestedBy: job.requested_by, at: job.started_at ?? job.scheduled_for,
      finishedAt: job.finished_at, switchSeconds: num(action?.switch_seconds),
      steps: stepsOfJob(job).length, error: job.error ? job.error.split('\n')[0] ?? null : null }
  })
}

/** The plan name DR jobs of a system are filed under (server/remote_ops.py). */
export const drPlan = (system: string) => `dr:${system}`

/** `drill = "CRON"` of each `[dr.SYSTEM]` table of a configuration's TOML text: the
 * drill schedule, read-only here (the configuration is edited on the plans page). Only
 * the plain `key = "value"` form the configuration pages write is read. */
export function drillSchedules(document: string): Record<string, string> {
  const found: Record<string, string> = {}
  let table: string | null = null
  for (const raw of document.split('\n')) {
    const line = raw.trim()
    const header = /^\[([^[\]]+)\]$/.exec(line)
    if (header) {
      const parts = (header[1] ?? '').split('.').map((p) => p.trim().replace(/^"(.*)"$/, '$1'))
      table = parts.length === 2 && parts[0] === 'dr' ? parts[1] ?? null : null
      continue
    }
    if (line.startsWith('[')) {
      table = null
      continue
    }
    const drill = /^drill\s*=\s*"([^"]*)"/.exec(line)
    if (table && drill) found[table] = drill[1] ?? ''
  }
  return found
}
