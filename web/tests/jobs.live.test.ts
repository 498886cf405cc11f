import { describe, expect, it } from 'vitest'
import type { Job, JobProgress } from '@/api/types'
import { asJobEvent, filtersOf, ListReads, matches, mergeJobEvent, queryOf, replaceRow,
  type JobBrief, type JobFilters, type JobLiveEvent, type ListView } from '@/pages/jobs/jobsLive'
import { followLive, type LiveSourceFactory } from '@/util/liveEvents'

const ALL: JobFilters = { institution: '', status: '', plan: '' }

function job(id: number, fields: Partial<Job> = {}): Job {
  return { id, institution: 'hosp-a', plan: 'pacs', kind: 'backup', status: 'succeeded',
    system: 'pacs', agent: 'agent-a', host: 'h1', requested_by: 'op-a',
    scheduled_for: '2026-12-06T10:00:00Z', started_at: '2026-12-06T10:00:01Z',
    finished_at: '2026-12-06T10:05:00Z', attempt: 1, cancel_requested: false, error: null,
    snapshot_id: null, bytes_added: null, details: null, progress: null, ...fields }
}

function event(id: number, kind: JobLiveEvent['kind'], brief: Partial<JobBrief>,
  data: Record<string, unknown> = {}, at = '2026-12-06T11:00:00Z'): JobLiveEvent {
  return { event_id: 1000 + id, at, kind, data, job: { id, institution: 'hosp-a',
    plan: 'pacs', kind: 'backup', system: 'pacs', agent: null, status: 'queued',
    progress: null, ...brief } }
}

const view = (jobs: Job[], fields: Partial<ListView> = {}): ListView =>
  ({ jobs, cursor: undefined, next: null, pageSize: 50, ...fields })
const ids = (merged: { view: ListView }) => merged.view.jobs.map((j) => j.id)
const half: JobProgress = { percent: 50, bytes_done: 5, bytes_total: 10, eta_seconds: 30,
  message: 'halfway' }

describe('a job event on the row it names', () => {
  const shown = view([job(12, { status: 'queued', started_at: null, finished_at: null,
    agent: null }), job(11), job(10)])

  it('takes the state the job is in and the time it started running', () => {
    const merged = mergeJobEvent(shown, event(12, 'status',
      { status: 'running', agent: 'agent-a' }, { status: 'running', host: 'h2' }), ALL)
    expect(merged.outcome).toBe('updated')
    const row = merged.view.jobs[0]!
    expect(row).toMatchObject({ id: 12, status: 'running', agent: 'agent-a', host: 'h2',
      started_at: '2026-12-06T11:00:00Z', requested_by: 'op-a' })
    expect(ids(merged)).toEqual([12, 11, 10])
    expect(shown.jobs[0]!.status).toBe('queued')  // the old view is left as it was
  })

  it('takes the progress and its ETA', () => {
    const merged = mergeJobEvent(shown, event(12, 'progress',
      { status: 'running', progress: half }, { ...half }), ALL)
    expect(merged.view.jobs[0]).toMatchObject({ status: 'running', progress: half })
  })

  it('takes a cancel request, an end with its error and the finish time', () => {
    const asked = mergeJobEvent(shown, event(12, 'status', { status: 'running' },
      { status: 'running', cancel_requested: true }), ALL)
    expect(asked.view.jobs[0]).toMatchObject({ status: 'running', cancel_requested: true })
    const failed = mergeJobEvent(asked.view, event(12, 'status', { status: 'failed' },
      { status: 'failed', error: 'repository unreachable', snapshot_id: null },
      '2026-12-06T11:02:00Z'), ALL)
    expect(failed.view.jobs[0]).toMatchObject({ status: 'failed', cancel_requested: true,
      error: 'repository unreachable', finished_at: '2026-12-06T11:02:00Z' })
  })

  it('keeps its row when it leaves a status filter (the next full read drops it)', () => {
    const running = view([job(12, { status: 'running' })])
    const merged = mergeJobEvent(running, event(12, 'status', { status: 'succeeded' },
      { status: 'succeeded', snapshot_id: 'abc' }),
    { ...ALL, status: 'running' })
    expect(merged.outcome).toBe('updated')
    expect(merged.view.jobs[0]).toMatchObject({ status: 'succeeded', snapshot_id: 'abc' })
  })
})

describe('a job the list does not show', () => {
  it('goes on top of the newest page when it matches the filters', () => {
    const merged = mergeJobEvent(view([job(11), job(10)]),
      event(13, 'status', { status: 'queued', plan: 'his' }, { status: 'queued' }),
      { ...ALL, plan: 'his', institution: 'hosp-a' })
    expect(merged.outcome).toBe('inserted')
    expect(ids(merged)).toEqual([13, 11, 10])
    expect(merged.view.jobs[0]).toMatchObject({ plan: 'his', status: 'queued',
      scheduled_for: '2026-12-06T11:00:00Z', requested_by: null })
  })

  it('goes in its place by id (a queued job a "running" filter now takes in)', () => {
    const merged = mergeJobEvent(view([job(20, { status: 'running' }),
      job(12, { status: 'running' })]), event(15, 'status', { status: 'running' },
      { status: 'running' }), { ...ALL, status: 'running' })
    expect(ids(merged)).toEqual([20, 15, 12])
  })

  it('pushes the last row of a full page to the next, which now starts after it', () => {
    const merged = mergeJobEvent(view([job(12), job(11), job(10)], { pageSize: 3, next: 10 }),
      event(13, 'status', { status: 'queued' }), ALL)
    expect(ids(merged)).toEqual([13, 12, 11])
    expect(merged.view.next).toBe(11)
  })

  it('is left out when it does not match the filters', () => {
    const shown = view([job(11)])
    for (const filters of [{ ...ALL, plan: 'his' }, { ...ALL, status: 'running' },
      { ...ALL, institution: 'hosp-b' }]) {
      const merged = mergeJobEvent(shown, event(13, 'status', { status: 'queued' }), filters)
      expect(merged.outcome).toBe('ignored')
      expect(merged.view).toBe(shown)
    }
  })

  it('is left out when it belongs on another page', () => {
    // an older job, below the last row of a page that has more after it
    const first = view([job(20), job(19)], { next: 19 })
    expect(mergeJobEvent(first, event(5, 'status', { status: 'running' }), ALL).outcome)
      .toBe('ignored')
    // a newer job on a page back in time
    const back = view([job(9), job(8)], { cursor: 10, next: null })
    expect(mergeJobEvent(back, event(30, 'status', { status: 'queued' }), ALL).outcome)
      .toBe('ignored')
    expect(ids(mergeJobEvent(back, event(7, 'status', { status: 'running' }), ALL)))
      .toEqual([9, 8, 7])
  })

  it('is matched on what the event says of it', () => {
    expect(matches({ institution: null, plan: 'catalog', status: 'running' },
      { institution: '', status: 'running', plan: ' catalog ' })).toBe(true)
    expect(matches({ institution: null, plan: 'catalog', status: 'running' },
      { ...ALL, institution: 'hosp-a' })).toBe(false)
  })
})

describe('a job read again after the event that added it', () => {
  it('fills in who asked and when, and keeps a state the row is further along in', () => {
    const live = job(13, { status: 'running', requested_by: null, progress: half })
    const read = job(13, { status: 'queued', requested_by: 'op-a', started_at: null,
      progress: null })
    const [row] = replaceRow([live], read)
    expect(row).toMatchObject({ status: 'running', requested_by: 'op-a', progress: half })
  })

  it('takes a read further along, and ignores a job no longer shown', () => {
    const [row] = replaceRow([job(13, { status: 'running' })], job(13, { status: 'failed' }))
    expect(row!.status).toBe('failed')
    const rows = [job(12)]
    expect(replaceRow(rows, job(13))).toBe(rows)
  })
})

describe('a resync or a reopened stream: the list read again', () => {
  it('applies the events that came while the read was out to its answer', () => {
    const reads = new ListReads()
    const ticket = reads.start()
    expect(reads.busy).toBe(true)
    const during = event(12, 'status', { status: 'running' }, { status: 'running' })
    reads.hold(during)
    const missed = reads.answered(ticket)
    expect(missed).toEqual([during])
    expect(reads.busy).toBe(false)
    // the answer was read before the job started running: the event puts it right
    let shown = view([job(12, { status: 'queued' }), job(11)])
    for (const e of missed!) shown = mergeJobEvent(shown, e, ALL).view
    expect(shown.jobs[0]!.status).toBe('running')
  })

  it('drops an answer older than the one shown', () => {
    const reads = new ListReads()
    const old = reads.start()
    const fresh = reads.start()
    expect(reads.answered(fresh)).toEqual([])
    expect(reads.answered(old)).toBeNull()
    expect(reads.failed(reads.start())).toBe(true)
    const stale = reads.start()
    expect(reads.answered(reads.start())).toEqual([])
    expect(reads.failed(stale)).toBe(false)
  })

  it('is what the page does on `ready` and `resync`, and job events reach it with data', () => {
    const listeners = new Map<string, (e: Event) => void>()
    const open: LiveSourceFactory = () => ({
      readyState: 1, onopen: null, onerror: null, close: () => undefined,
      addEventListener: (name: string, listener: (e: Event) => void) => {
        listeners.set(name, listener)
      },
    } as unknown as ReturnType<LiveSourceFactory>)
    const seen: [string, unknown][] = []
    const stop = followLive({ onChange: () => undefined,
      onEvent: (name, data) => seen.push([name, data]) }, { open })
    const progress = event(12, 'progress', { status: 'running', progress: half }, { ...half })
    for (const [name, data] of [['ready', { cursor: 3 }], ['job', progress],
      ['resync', { reason: 'too_many_events' }]] as const) {
      listeners.get(name)!(new MessageEvent(name, { data: JSON.stringify(data) }))
    }
    stop()
    expect(seen.map(([name]) => name)).toEqual(['ready', 'job', 'resync'])
    expect(asJobEvent(seen[1]![1])).toEqual(progress)
    expect(asJobEvent({ job: { id: 'x' } })).toBeNull()
    expect(asJobEvent({ job: { id: 1, plan: 'p', status: 'lost' } })).toBeNull()
  })
})

describe('the filters in the URL', () => {
  it('are read from the query, an unknown status left out', () => {
    expect(filtersOf({ plan: ' pacs ', status: 'bogus', institution: ['hosp-a', 'x'] }))
      .toEqual({ institution: 'hosp-a', status: '', plan: 'pacs' })
  })

  it('are written to it with the other keys kept and empty ones left out', () => {
    expect(queryOf({ institution: '', status: 'failed', plan: 'pacs' },
      { job: '12', plan: 'old', institution: 'hosp-a' }))
      .toEqual({ job: '12', status: 'failed', plan: 'pacs' })
  })
})
