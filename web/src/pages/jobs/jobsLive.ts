// The Jobs page's list kept current from the live feed (GET /api/events, `job` events,
// server/live_events.py): an event carries the job's brief as the server read it just
// then (status, progress, plan...), so the row it names is updated in place with no
// request, and a job new to the page's view (queued now, or a queued job that a
// "running" filter now takes in) is put in its place by id. A page's view is
// "newest first, ids below the page's cursor, above the last row shown when more pages
// follow", so an event is placed exactly where a fresh GET /api/jobs would put it.
// The filters are in the URL query (?institution=&status=&plan=), so other pages link
// to the jobs of one plan.
import type { LocationQuery, LocationQueryRaw } from 'vue-router'
import { withQuery } from '@/api/client'
import type { Job, JobProgress, JobStatus } from '@/api/types'
import { JOB_STATUSES } from '@/api/types'

export const PAGE_SIZE = 50

export interface JobFilters {
  institution: string
  status: string
  plan: string
}

/** What a `job` event says of its job (live_events._job_event's `job`). */
export interface JobBrief {
  id: number
  institution: string | null
  plan: string
  kind: string
  system: string | null
  agent: string | null
  status: JobStatus
  progress: JobProgress | null
}

export interface JobLiveEvent {
  event_id: number
  at: string
  kind: 'status' | 'progress' | 'log'
  data: Record<string, unknown>
  job: JobBrief
}

/** The page's view of the list: its rows, the page's cursor (undefined: the newest
 * page) and whether older pages follow (next_before_id). */
export interface ListView {
  jobs: Job[]
  cursor: number | undefined
  next: number | null
  pageSize: number
}

export type MergeOutcome = 'updated' | 'inserted' | 'ignored'

export interface Merged {
  view: ListView
  outcome: MergeOutcome
}

const ENDED = new Set(['succeeded', 'failed', 'cancelled'])

/** A `job` event's payload, or null when it is not one (a wrong shape is ignored, never
 * a broken page). */
export function asJobEvent(data: unknown): JobLiveEvent | null {
  const event = data as Partial<JobLiveEvent> | null
  const job = event?.job as Partial<JobBrief> | undefined
  if (!event || typeof event !== 'object' || !job || typeof job.id !== 'number'
    || typeof job.plan !== 'string' || !JOB_STATUSES.includes(job.status as JobStatus)) {
    return null
  }
  return { event_id: Number(event.event_id ?? 0), at: String(event.at ?? ''),
    kind: event.kind ?? 'log', data: event.data ?? {}, job: job as JobBrief }
}

/** Whether the job is one the filters ask for (the server's exact matches). */
export function matches(job: Pick<JobBrief, 'institution' | 'plan' | 'status'>,
  filters: JobFilters): boolean {
  return (!filters.institution || job.institution === filters.institution)
    && (!filters.status || job.status === filters.status)
    && (!filters.plan.trim() || job.plan === filters.plan.trim())
}

/** Whether a job of this id belongs on the page shown (ids newest first). */
function onPage(id: number, view: ListView): boolean {
  if (view.cursor !== undefined && id >= view.cursor) return false
  const last = view.jobs.at(-1)
  return view.next === null || last === undefined || id > last.id
}

/** The row with what the event says: the brief's current state, and from a status
 * event its times, error, snapshot and cancel request. */
export function applyEvent(row: Job, event: JobLiveEvent): Job {
  const brief = event.job
  const next: Job = { ...row, status: brief.status, plan: brief.plan, kind: brief.kind,
    institution: brief.institution, system: brief.system ?? row.system,
    agent: brief.agent ?? row.agent, progress: brief.progress ?? row.progress }
  if (event.kind !== 'status') return next
  const data = event.data
  if (typeof data.cancel_requested === 'boolean') next.cancel_requested = data.cancel_requested
  if (brief.status === 'running' && !next.started_at && event.at) next.started_at = event.at
  if (ENDED.has(brief.status)) {
    if (!next.finished_at && event.at) next.finished_at = event.at
    if ('error' in data) next.error = data.error === null ? null : String(data.error)
    if (typeof data.snapshot_id === 'string') next.snapshot_id = data.snapshot_id
  }
  if (typeof data.host === 'string') next.host = data.host
  return next
}

/** A row for a job the page has not read yet: the brief, the rest unknown until the
 * job's own GET fills it in. */
export function rowOf(event: JobLiveEvent): Job {
  const empty: Job = { id: event.job.id, institution: null, plan: '', kind: '',
    status: 'queued', system: null, agent: null, host: '', requested_by: null,
    scheduled_for: event.kind === 'status' && event.job.status === 'queued' ? event.at || null
      : null,
    started_at: null, finished_at: null, attempt: 1, cancel_requested: false, error: null,
    snapshot_id: null, bytes_added: null, details: null, progress: null }
  return applyEvent(empty, event)
}

/** The view after one `job` event: the row updated in place (it stays, even when it no
 * longer matches a status filter: the next full read drops it, so a row does not vanish
 * under the pointer), or inserted by id when it matches the filters and belongs on the
 * page shown (the last row leaving a full page), else unchanged. */
export function mergeJobEvent(view: ListView, event: JobLiveEvent, filters: JobFilters
): Merged {
  const at = view.jobs.findIndex((job) => job.id === event.job.id)
  if (at >= 0) {
    const jobs = view.jobs.slice()
    jobs[at] = applyEvent(jobs[at]!, event)
    return { view: { ...view, jobs }, outcome: 'updated' }
  }
  if (!matches(event.job, filters) || !onPage(event.job.id, view)) {
    return { view, outcome: 'ignored' }
  }
  const jobs = view.jobs.slice()
  const place = jobs.findIndex((job) => job.id < event.job.id)
  jobs.splice(place < 0 ? jobs.length : place, 0, rowOf(event))
  let next = view.next
  if (jobs.length > view.pageSize) {
    jobs.length = view.pageSize
    next = jobs.at(-1)!.id
  }
  return { view: { ...view, jobs, next }, outcome: 'inserted' }
}

const RANK: Record<JobStatus, number> = { queued: 0, running: 1, succeeded: 2, failed: 2,
  cancelled: 2 }

/** A job read again (GET /api/jobs/{id}) in the place of its row, if still shown. The
 * read may predate an event already applied to the row: a job's status only moves on
 * (queued, running, ended), so the row's state is kept when it is further along, and
 * its live progress when the state is the same; the rest (who asked, when) is the
 * read's. */
export function replaceRow(jobs: Job[], read: Job): Job[] {
  const at = jobs.findIndex((row) => row.id === read.id)
  if (at < 0) return jobs
  const row = jobs[at]!
  const copy = jobs.slice()
  if (RANK[read.status] > RANK[row.status]) copy[at] = read
  else if (RANK[read.status] === RANK[row.status]) {
    copy[at] = { ...read, progress: row.progress ?? read.progress,
      cancel_requested: row.cancel_requested || read.cancel_requested }
  } else {
    copy[at] = { ...row, requested_by: read.requested_by, scheduled_for: read.scheduled_for,
      attempt: read.attempt, details: read.details, host: row.host || read.host }
  }
  return copy
}

/** The filters a URL query asks for (unknown statuses left out). */
export function filtersOf(query: Record<string, unknown>): JobFilters {
  const one = (value: unknown) => (Array.isArray(value) ? value[0] : value)
  const text = (value: unknown) => (typeof one(value) === 'string' ? String(one(value)) : '')
  const status = text(query.status)
  return { institution: text(query.institution), plan: text(query.plan).trim(),
    status: JOB_STATUSES.includes(status as JobStatus) ? status : '' }
}

/** The list's GET for these filters and page (the prefetch's key too). */
export function listPath(filters: JobFilters, cursor?: number): string {
  return withQuery('/api/jobs', { institution: filters.institution, status: filters.status,
    plan: filters.plan.trim(), limit: PAGE_SIZE, before_id: cursor })
}

/** The URL query of the filters (empty ones left out), other keys kept. */
export function queryOf(filters: JobFilters, query: LocationQuery): LocationQueryRaw {
  const kept: LocationQueryRaw = { ...query }
  for (const key of ['institution', 'status', 'plan'] as const) {
    const value = filters[key].trim()
    if (value) kept[key] = value
    else delete kept[key]
  }
  return kept
}

/** The list reads still out, each with the `job` events that came while it was: its
 * answer may predate them, so they are applied to it again. An answer older than the
 * one shown is dropped (filters or page changed meanwhile). */
export class ListReads {
  private asked = 0
  private shown = 0
  private readonly held = new Map<number, JobLiveEvent[]>()

  get busy(): boolean {
    return this.held.size > 0
  }

  /** A read goes out: its ticket. */
  start(): number {
    this.held.set(++this.asked, [])
    return this.asked
  }

  /** An event came: every read out may have missed it. */
  hold(event: JobLiveEvent): void {
    for (const events of this.held.values()) events.push(event)
  }

  /** The read's answer came: the events to apply to it again, or null to drop it. */
  answered(ticket: number): JobLiveEvent[] | null {
    const events = this.held.get(ticket) ?? []
    this.held.delete(ticket)
    if (ticket < this.shown) return null
    this.shown = ticket
    return events
  }

  /** The read failed: whether its error is news (no newer answer is shown). */
  failed(ticket: number): boolean {
    this.held.delete(ticket)
    return ticket >= this.shown
  }
}
