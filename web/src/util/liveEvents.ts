// The console's live feed (GET /api/events, Server-Sent Events; docs/server.md "The
// dashboard, the topology and live events"): pages that show a summary of the catalog
// (the dashboard, the topology) read it again when something it shows may have changed,
// a short while after the last relevant event (debounced, but never later than
// `maxWaitMs` after the first), so a burst of job events costs one request and a change
// shows within about a second. Progress and log lines change nothing a summary shows.
// (api/events.ts follows one job's events; this is the institution-wide stream.)

export type LiveState = 'connecting' | 'live' | 'retrying'

/** Why a page should read its data again. */
export type ChangeReason = 'opened' | 'job' | 'dr_step' | 'dr_status' | 'alert' | 'agent'
  | 'resync'

export interface LiveHandlers {
  onChange: (reason: ChangeReason) => void
  onState?: (state: LiveState) => void
  /** Every event as it comes, with its payload (a page that applies events itself,
   * the jobs list, rather than reading its data again). */
  onEvent?: (name: string, data: unknown) => void
}

type Source = Pick<EventSource, 'addEventListener' | 'close' | 'readyState'> & {
  onopen: ((this: EventSource, ev: Event) => unknown) | null
  onerror: ((this: EventSource, ev: Event) => unknown) | null
}
export type LiveSourceFactory = (url: string) => Source

export interface Timers {
  now: () => number
  set: (fn: () => void, ms: number) => unknown
  clear: (handle: unknown) => void
}

const browserTimers: Timers = {
  now: () => Date.now(),
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

export interface LiveOptions {
  /** Only this institution's events (a regional center's account narrowing its view). */
  institution?: string | null
  debounceMs?: number
  maxWaitMs?: number
  open?: LiveSourceFactory
  timers?: Timers
}

/** Whether an event of the stream may change a summary of the catalog. */
export function isRelevant(name: string, data: unknown): boolean {
  if (name === 'job') {
    const kind = (data as { kind?: unknown } | null)?.kind
    return kind === 'status'
  }
  return name === 'dr_step' || name === 'dr_status' || name === 'alert' || name === 'agent'
    || name === 'resync' || name === 'ready'
}

/** Calls `fire` `waitMs` after the last `poke`, and at most `maxWaitMs` after the first
 * poke of a burst. */
export class Debouncer {
  private handle: unknown = null
  private first: number | null = null

  constructor(private readonly fire: () => void, private readonly waitMs: number,
    private readonly maxWaitMs: number, private readonly timers: Timers = browserTimers) {}

  poke(): void {
    const now = this.timers.now()
    if (this.first === null) this.first = now
    if (this.handle !== null) this.timers.clear(this.handle)
    const left = Math.max(0, Math.min(this.waitMs, this.first + this.maxWaitMs - now))
    this.handle = this.timers.set(() => this.flush(), left)
  }

  /** Fire now if a call is pending. */
  flush(): void {
    if (this.handle !== null) this.timers.clear(this.handle)
    const pending = this.first !== null
    this.handle = null
    this.first = null
    if (pending) this.fire()
  }

  cancel(): void {
    if (this.handle !== null) this.timers.clear(this.handle)
    this.handle = null
    this.first = null
  }
}

const browserSource: LiveSourceFactory = (url) => new EventSource(url, { withCredentials: true })
const NAMES = ['ready', 'job', 'dr_step', 'dr_status', 'alert', 'agent', 'resync'] as const

/** Follow the live feed until the returned function is called. A (re)opened stream
 * (`ready`) is a change too: alerts and agents' states are not replayed. */
export function followLive(handlers: LiveHandlers, options: LiveOptions = {}): () => void {
  const query = options.institution
    ? `?institution=${encodeURIComponent(options.institution)}` : ''
  const source = (options.open ?? browserSource)(`/api/events${query}`)
  let reason: ChangeReason = 'opened'
  const debouncer = new Debouncer(() => handlers.onChange(reason), options.debounceMs ?? 200,
    options.maxWaitMs ?? 800, options.timers ?? browserTimers)
  handlers.onState?.('connecting')
  source.onopen = () => handlers.onState?.('live')
  source.onerror = () => handlers.onState?.('retrying')
  for (const name of NAMES) {
    source.addEventListener(name, (message: Event) => {
      let data: unknown = null
      try {
        data = JSON.parse((message as MessageEvent<string>).data)
      } catch {
        return
      }
      handlers.onEvent?.(name, data)
      if (!isRelevant(name, data)) return
      reason = name === 'ready' ? 'opened' : name
      if (name === 'ready') handlers.onState?.('live')
      debouncer.poke()
      if (name === 'resync') debouncer.flush()
    })
  }
  return () => {
    debouncer.cancel()
    source.close()
  }
}
