// The restore wizard as a state machine: system → point in time → what and where →
// confirm → progress. What is restored is paths of a snapshot, or for a second inside a
// database's log window that database (a plan's source) as it was at that second. Each step may be left only when its choice is made; changing an
// earlier choice forgets the later ones that depended on it. Pure: RestoreView.vue
// keeps the state and draws it.
import type { Choice } from './timeline'
import { utcIso } from './pitr'
import { MAX_DICOM, restoreCount, type DicomPick } from './dicom'

export const STEPS = ['system', 'point', 'items', 'confirm', 'progress'] as const
export type Step = (typeof STEPS)[number]

/** The most paths one restore names (the server's and the agent's limit). */
export const MAX_PATHS = 100

export interface WizardState {
  step: Step
  institution: string
  system: string
  choice: Choice | null
  /** Absolute paths inside the snapshot; a directory takes its subtree along. */
  paths: string[]
  /** The whole snapshot rather than chosen paths. */
  whole: boolean
  /** Instead of paths: studies (or series) found by the snapshot's DICOM catalog. */
  dicom: DicomPick[]
  /** For a second inside a log window: the plan and its database source restored. */
  plan: string
  source: string
  target: string
  jobId: number | null
}

export type Action =
  | { type: 'institution'; name: string }
  | { type: 'system'; name: string }
  | { type: 'choose'; choice: Choice | null }
  | { type: 'toggle'; path: string }
  | { type: 'unselect'; path: string }
  | { type: 'whole'; value: boolean }
  | { type: 'dicom'; picks: DicomPick[] }
  | { type: 'source'; plan: string; source: string }
  | { type: 'target'; name: string }
  | { type: 'next' }
  | { type: 'back' }
  | { type: 'goto'; step: Step }
  | { type: 'submitted'; jobId: number }
  | { type: 'restart' }

export function initial(institution = ''): WizardState {
  return { step: 'system', institution, system: '', choice: null, paths: [], whole: false,
    dicom: [], plan: '', source: '', target: '', jobId: null }
}

/** The snapshot a restore of this choice reads (a window's base), or null. */
export function snapshotOf(choice: Choice | null): string | null {
  if (!choice) return null
  if (choice.kind === 'point') return choice.point.id
  return choice.base?.id ?? null
}

/** Why the step cannot be left forward, as a message key under restore.why, or null. */
export function blocker(state: WizardState): string | null {
  switch (state.step) {
    case 'system':
      return !state.institution ? 'institution' : !state.system ? 'system' : null
    case 'point':
      return state.choice ? null : 'point'
    case 'items':
      if (state.choice?.kind === 'window') {
        return !state.plan || !state.source ? 'source' : !state.target ? 'target' : null
      }
      if (!state.whole && !state.paths.length && !state.dicom.length) return 'items'
      if (state.paths.length > MAX_PATHS) return 'tooMany'
      if (restoreCount(state.dicom) > MAX_DICOM) return 'tooManyStudies'
      return !state.target ? 'target' : null
    case 'confirm':
      return null
    case 'progress':
      return 'done'
  }
}

/** Whether `path` is chosen, itself or through a chosen directory above it. */
export function covered(paths: readonly string[], path: string): boolean {
  return paths.some((p) => p === path || path.startsWith(p === '/' ? '/' : `${p}/`))
}

/** Choose a path (a directory takes what is under it: chosen paths below it go), or
 * unchoose it when chosen itself. A path under a chosen directory stays covered. */
export function toggle(paths: readonly string[], path: string): string[] {
  if (paths.includes(path)) return paths.filter((p) => p !== path)
  if (covered(paths, path)) return [...paths]
  const prefix = path === '/' ? '/' : `${path}/`
  return [...paths.filter((p) => !p.startsWith(prefix)), path].sort()
}

function forward(state: WizardState): WizardState {
  if (blocker(state) !== null || state.step === 'confirm') return state
  const index = STEPS.indexOf(state.step)
  return { ...state, step: STEPS[index + 1] ?? state.step }
}

export function reduce(state: WizardState, action: Action): WizardState {
  if (state.step === 'progress' && action.type !== 'restart') return state
  switch (action.type) {
    case 'institution':
      if (action.name === state.institution) return state
      return { ...initial(action.name) }
    case 'system':
      if (action.name === state.system) return state
      return { ...initial(state.institution), system: action.name }
    case 'choose': {
      const same = snapshotOf(action.choice) === snapshotOf(state.choice)
      const sameSecond = action.choice?.kind === 'window' && state.choice?.kind === 'window'
        && action.choice.at === state.choice.at
      return { ...state, choice: action.choice, paths: same ? state.paths : [],
        whole: same ? state.whole : false, dicom: same ? state.dicom : [], plan: sameSecond ? state.plan : '',
        source: sameSecond ? state.source : '' }
    }
    case 'source':
      return { ...state, plan: action.plan, source: action.source }
    case 'toggle':
      // files or studies in one restore, not both (the request carries one of them)
      return { ...state, paths: toggle(state.paths, action.path), whole: false, dicom: [] }
    case 'dicom':
      return { ...state, dicom: [...action.picks], paths: action.picks.length ? [] : state.paths,
        whole: action.picks.length ? false : state.whole }
    case 'unselect':
      return { ...state, paths: state.paths.filter((p) => p !== action.path) }
    case 'whole':
      return { ...state, whole: action.value, paths: action.value ? [] : state.paths,
        dicom: action.value ? [] : state.dicom }
    case 'target':
      return { ...state, target: action.name }
    case 'next':
      return forward(state)
    case 'back': {
      const index = STEPS.indexOf(state.step)
      return index > 0 ? { ...state, step: STEPS[index - 1] ?? state.step } : state
    }
    case 'goto': {
      // only back to a step already passed
      const to = STEPS.indexOf(action.step)
      return to < STEPS.indexOf(state.step) ? { ...state, step: action.step } : state
    }
    case 'submitted':
      return state.step === 'confirm' ? { ...state, step: 'progress', jobId: action.jobId }
        : state
    case 'restart':
      return initial(state.institution)
  }
}

export type RestoreBody =
  | { snapshot: string; paths: string[]; target: string }
  | { snapshot: string; dicom: DicomPick[]; target: string }
  | { time: string; plan: string; source: string; target: string }

/** The body of POST …/restores for the confirmed state, or null when not ready: a
 * snapshot's paths, or a database source at a second (in UTC, to the second). */
export function restoreBody(state: WizardState): RestoreBody | null {
  if (state.choice?.kind === 'window') {
    if (!state.plan || !state.source || !state.target) return null
    return { time: utcIso(state.choice.at), plan: state.plan, source: state.source,
      target: state.target }
  }
  const snapshot = snapshotOf(state.choice)
  if (!snapshot || !state.target || state.choice?.kind !== 'point') return null
  if (!state.whole && state.dicom.length) {
    return { snapshot, dicom: state.dicom.map((p) => ({ study: p.study, series: [...p.series] })),
      target: state.target }
  }
  if (!state.whole && !state.paths.length) return null
  return { snapshot, paths: state.whole ? [] : [...state.paths], target: state.target }
}

/** A directory path joined with an entry's name. */
export function childPath(directory: string, name: string): string {
  return directory === '/' ? `/${name}` : `${directory.replace(/\/+$/, '')}/${name}`
}

/** The breadcrumb of a directory: [{name, path}] from the root. */
export function crumbs(directory: string): { name: string; path: string }[] {
  const parts = directory.split('/').filter(Boolean)
  return [{ name: '/', path: '/' },
    ...parts.map((name, i) => ({ name, path: `/${parts.slice(0, i + 1).join('/')}` }))]
}

/** The restore target names offered: those the agents that would run it declare
 * (online agents' first), without repeats. */
export function targetNames(agents: readonly { state: string; targets: string[] }[]): string[] {
  const ordered = [...agents].sort((a, b) => Number(b.state === 'online') - Number(a.state === 'online'))
  return [...new Set(ordered.flatMap((a) => a.targets))]
}

/** Where the restored files are: the restore's summary in the job's details (for a
 * point in time, the new data directory's name under the target, the second and the
 * database kind). */
export interface Outcome {
  target: string | null
  files: number | null
  bytes: number | null
  seconds: number | null
  dataDir: string | null
  time: string | null
  kind: string | null
  /** A restore of studies by the DICOM catalog: the studies and instances restored. */
  studies: number | null
  instances: number | null
}

export function outcomeOf(details: Record<string, unknown> | null | undefined): Outcome {
  const restore = (details?.restore ?? {}) as Record<string, unknown>
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null)
  const text = (v: unknown) => (typeof v === 'string' && v ? v : null)
  return { target: text(restore.target), files: num(restore.files_restored),
    bytes: num(restore.bytes_restored), seconds: num(restore.seconds_elapsed),
    dataDir: text(restore.data_dir), time: text(restore.time), kind: text(restore.kind),
    studies: num(restore.studies), instances: num(restore.instances) }
}
