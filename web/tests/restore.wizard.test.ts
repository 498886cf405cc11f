import { describe, expect, it } from 'vitest'
import {
  blocker, childPath, covered, crumbs, initial, MAX_PATHS, outcomeOf, reduce, restoreBody,
  snapshotOf, targetNames, toggle, type Action, type WizardState,
} from '@/pages/restore/wizard'
import type { Point } from '@/pages/restore/types'
import type { Choice } from '@/pages/restore/timeline'

const point = (id: string, time: string): Point => ({ id: id.padEnd(64, '0'), short_id: id,
  time, host: 'pacs-host', tags: ['system=pacs'], paths: ['/data'], size: 1024,
  repository: 'local' })
const P1 = point('aaaaaaaa', '2026-12-01T02:00:00Z')
const P2 = point('bbbbbbbb', '2026-12-02T02:00:00Z')
const onP1: Choice = { kind: 'point', point: P1, at: Date.parse(P1.time) }
const onP2: Choice = { kind: 'point', point: P2, at: Date.parse(P2.time) }

function run(state: WizardState, ...actions: Action[]): WizardState {
  return actions.reduce(reduce, state)
}

const ready = () => run(initial('hosp-a'), { type: 'system', name: 'pacs' }, { type: 'next' },
  { type: 'choose', choice: onP1 }, { type: 'next' }, { type: 'toggle', path: '/data/x.dcm' },
  { type: 'target', name: 'scratch' }, { type: 'next' })

describe('the restore wizard', () => {
  it('goes forward only when the step is done, saying why not', () => {
    let state = initial()
    expect(blocker(state)).toBe('institution')
    state = run(state, { type: 'next' })
    expect(state.step).toBe('system')
    state = run(state, { type: 'institution', name: 'hosp-a' }, { type: 'next' })
    expect([state.step, blocker(state)]).toEqual(['system', 'system'])
    state = run(state, { type: 'system', name: 'pacs' }, { type: 'next' })
    expect([state.step, blocker(state)]).toEqual(['point', 'point'])
    state = run(state, { type: 'choose', choice: onP1 }, { type: 'next' })
    expect([state.step, blocker(state)]).toEqual(['items', 'items'])
    state = run(state, { type: 'toggle', path: '/data/x.dcm' }, { type: 'next' })
    expect(blocker(state)).toBe('target')
    state = run(state, { type: 'target', name: 'scratch' }, { type: 'next' })
    expect(state.step).toBe('confirm')
    // confirm is left by submitting, not by next
    expect(run(state, { type: 'next' }).step).toBe('confirm')
    state = run(state, { type: 'submitted', jobId: 7 })
    expect([state.step, state.jobId]).toEqual(['progress', 7])
  })

  it('forgets what depended on an earlier choice', () => {
    const state = ready()
    const other = run(state, { type: 'back' }, { type: 'back' }, { type: 'back' },
      { type: 'system', name: 'his' })
    expect(other).toMatchObject({ step: 'system', system: 'his', choice: null, paths: [],
      target: '', institution: 'hosp-a' })
    const moved = run(state, { type: 'goto', step: 'point' }, { type: 'choose', choice: onP2 })
    expect(moved.paths).toEqual([])
    expect(moved.target).toBe('scratch')
    // the same snapshot chosen again keeps the selection
    const same = run(state, { type: 'goto', step: 'point' }, { type: 'choose', choice: { ...onP1 } })
    expect(same.paths).toEqual(['/data/x.dcm'])
    const institution = run(state, { type: 'goto', step: 'system' },
      { type: 'institution', name: 'hosp-b' })
    expect(institution).toEqual(initial('hosp-b'))
  })

  it('goes back only to steps already passed, and not once the job is queued', () => {
    const state = ready()
    expect(run(state, { type: 'goto', step: 'progress' }).step).toBe('confirm')
    expect(run(state, { type: 'goto', step: 'items' }).step).toBe('items')
    const queued = run(state, { type: 'submitted', jobId: 3 })
    expect(run(queued, { type: 'back' }).step).toBe('progress')
    expect(run(queued, { type: 'system', name: 'x' }).system).toBe('pacs')
    expect(run(queued, { type: 'restart' })).toEqual(initial('hosp-a'))
    // submitted outside the confirm step is ignored
    expect(run(initial('a'), { type: 'submitted', jobId: 1 }).step).toBe('system')
  })

  it('restores a database at a second inside a log window: source, target, UTC time', () => {
    const at = Date.parse('2026-12-06T10:15:30Z')
    const inWindow: Choice = { kind: 'window', base: P1, window: { start: at - 60_000, end: at }, at }
    let state = run(initial('h'), { type: 'system', name: 'his' }, { type: 'next' },
      { type: 'choose', choice: inWindow }, { type: 'next' })
    expect([state.step, blocker(state)]).toEqual(['items', 'source'])
    expect(snapshotOf(inWindow)).toBe(P1.id)
    // no file is chosen for a database: the source and the target are what is asked
    state = run(state, { type: 'source', plan: 'his', source: 'db' }, { type: 'next' })
    expect([state.step, blocker(state)]).toEqual(['items', 'target'])
    expect(restoreBody(state)).toBeNull()
    state = run(state, { type: 'target', name: 'pg-restore' }, { type: 'next' })
    expect(state.step).toBe('confirm')
    expect(restoreBody(state)).toEqual({ time: '2026-12-06T10:15:30Z', plan: 'his',
      source: 'db', target: 'pg-restore' })
    state = run(state, { type: 'submitted', jobId: 9 })
    expect([state.step, state.jobId]).toEqual(['progress', 9])
  })

  it('forgets the database when another second is chosen, not when the same one is', () => {
    const at = Date.parse('2026-12-06T10:15:30Z')
    const second = (t: number): Choice => ({ kind: 'window', base: null,
      window: { start: at - 60_000, end: at }, at: t })
    const state = run(initial('h'), { type: 'system', name: 'his' }, { type: 'next' },
      { type: 'choose', choice: second(at) }, { type: 'next' },
      { type: 'source', plan: 'his', source: 'db' }, { type: 'target', name: 'pg' })
    const same = run(state, { type: 'back' }, { type: 'choose', choice: second(at) })
    expect([same.plan, same.source, same.target]).toEqual(['his', 'db', 'pg'])
    const other = run(state, { type: 'back' }, { type: 'choose', choice: second(at - 1000) })
    expect([other.plan, other.source, other.target]).toEqual(['', '', 'pg'])
    // a snapshot instead asks for paths again and sends no time
    const files = run(state, { type: 'back' }, { type: 'choose', choice: onP1 }, { type: 'next' },
      { type: 'whole', value: true }, { type: 'next' })
    expect(files.step).toBe('confirm')
    expect(restoreBody(files)).toEqual({ snapshot: P1.id, paths: [], target: 'pg' })
  })

  it('builds the restore request: paths, or the whole snapshot', () => {
    expect(restoreBody(ready())).toEqual({ snapshot: P1.id, paths: ['/data/x.dcm'],
      target: 'scratch' })
    const whole = run(ready(), { type: 'back' }, { type: 'whole', value: true }, { type: 'next' })
    expect(whole.step).toBe('confirm')
    expect(restoreBody(whole)).toEqual({ snapshot: P1.id, paths: [], target: 'scratch' })
    // choosing a path again leaves "the whole snapshot"
    expect(run(whole, { type: 'back' }, { type: 'toggle', path: '/a' }).whole).toBe(false)
    expect(restoreBody({ ...ready(), target: '' })).toBeNull()
  })

  it('refuses more paths than the agent takes', () => {
    let state = run(ready(), { type: 'back' })
    for (let i = 0; i < MAX_PATHS; i += 1) state = run(state, { type: 'toggle', path: `/f${i}` })
    expect(state.paths.length).toBe(MAX_PATHS + 1)
    expect(blocker(state)).toBe('tooMany')
    state = run(state, { type: 'unselect', path: '/f0' })
    expect(blocker(state)).toBeNull()
  })
})

describe('choosing paths', () => {
  it('a directory takes what is under it', () => {
    let paths = toggle([], '/data/study/IM1.dcm')
    paths = toggle(paths, '/data/other.dcm')
    paths = toggle(paths, '/data/study')
    expect(paths).toEqual(['/data/other.dcm', '/data/study'])
    expect(covered(paths, '/data/study/IM2.dcm')).toBe(true)
    expect(covered(paths, '/data/studyX')).toBe(false)
    // a path under a chosen directory cannot be chosen apart from it
    expect(toggle(paths, '/data/study/IM2.dcm')).toEqual(paths)
    expect(toggle(paths, '/data/study')).toEqual(['/data/other.dcm'])
    expect(covered(['/'], '/anything')).toBe(true)
  })

  it('joins paths and breaks a directory into its breadcrumb', () => {
    expect(childPath('/', 'data')).toBe('/data')
    expect(childPath('/data/', 'x')).toBe('/data/x')
    expect(crumbs('/data/study')).toEqual([{ name: '/', path: '/' },
      { name: 'data', path: '/data' }, { name: 'study', path: '/data/study' }])
    expect(crumbs('/')).toEqual([{ name: '/', path: '/' }])
  })
})

describe('targets and the outcome', () => {
  it('offers each declared name once, online agents first', () => {
    expect(targetNames([{ state: 'offline', targets: ['old', 'scratch'] },
      { state: 'online', targets: ['scratch', 'ward'] }])).toEqual(['scratch', 'ward', 'old'])
    expect(targetNames([])).toEqual([])
  })

  it('reads where the files went from the job details', () => {
    expect(outcomeOf({ restore: { target: 'scratch', files_restored: 1, bytes_restored: 4100,
      seconds_elapsed: 0.4 } })).toEqual({ target: 'scratch', files: 1, bytes: 4100,
      seconds: 0.4, dataDir: null, time: null, kind: null, studies: null, instances: null })
    expect(outcomeOf(null)).toEqual({ target: null, files: null, bytes: null, seconds: null,
      dataDir: null, time: null, kind: null, studies: null, instances: null })
    expect(outcomeOf({ restore: { target: 'scratch', studies: 1, instances: 5 } }))
      .toMatchObject({ studies: 1, instances: 5 })
    expect(outcomeOf({ restore: { target: 'pg', time: '2026-12-06T10:15:30Z', kind: 'postgres',
      data_dir: 'his-db-20261206T101530Z' } })).toMatchObject({ target: 'pg',
      dataDir: 'his-db-20261206T101530Z', time: '2026-12-06T10:15:30Z', kind: 'postgres' })
    expect(outcomeOf({ restore: { files_restored: 'x' } }).files).toBeNull()
  })
})
