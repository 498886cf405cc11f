import { describe, expect, it } from 'vitest'
import { Debouncer, followLive, isRelevant, type ChangeReason, type LiveSourceFactory,
  type LiveState, type Timers } from '@/util/liveEvents'

/** Timers the test moves by hand. */
class Clock implements Timers {
  time = 0
  private pending = new Map<number, { at: number; fn: () => void }>()
  private next = 1
  now = () => this.time
  set = (fn: () => void, ms: number) => {
    const id = this.next++
    this.pending.set(id, { at: this.time + ms, fn })
    return id
  }
  clear = (handle: unknown) => {
    this.pending.delete(handle as number)
  }
  advance(ms: number): void {
    const end = this.time + ms
    for (;;) {
      const due = [...this.pending.entries()].filter(([, p]) => p.at <= end)
        .sort((a, b) => a[1].at - b[1].at)[0]
      if (!due) break
      this.pending.delete(due[0])
      this.time = due[1].at
      due[1].fn()
    }
    this.time = end
  }
}

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
  }
  emit(kind: string, data: unknown): void {
    const text = typeof data === 'string' ? data : JSON.stringify(data)
    for (const listener of this.listeners.get(kind) ?? []) {
      listener(new MessageEvent(kind, { data: text }))
    }
  }
}

const job = (kind: string) => ({ event_id: 1, at: '', kind, data: {}, job: { id: 1 } })

describe('which events matter to a summary', () => {
  it('a job\'s status, DR steps, alerts, agents, a resync and a (re)opened stream', () => {
    expect(isRelevant('job', job('status'))).toBe(true)
    expect(isRelevant('job', job('progress'))).toBe(false)
    expect(isRelevant('job', job('log'))).toBe(false)
    for (const name of ['dr_step', 'dr_status', 'alert', 'agent', 'resync', 'ready']) {
      expect(isRelevant(name, {})).toBe(true)
    }
    expect(isRelevant('other', {})).toBe(false)
  })
})

describe('the debouncer', () => {
  it('fires once after a burst goes quiet', () => {
    const clock = new Clock()
    let fired = 0
    const debouncer = new Debouncer(() => fired++, 300, 1000, clock)
    debouncer.poke()
    clock.advance(200)
    debouncer.poke()
    clock.advance(200)
    expect(fired).toBe(0)
    clock.advance(100)
    expect(fired).toBe(1)
    clock.advance(5000)
    expect(fired).toBe(1)
  })

  it('fires no later than the longest wait after a burst\'s first event', () => {
    const clock = new Clock()
    const times: number[] = []
    const debouncer = new Debouncer(() => times.push(clock.time), 300, 1000, clock)
    for (let i = 0; i < 20; i++) {
      debouncer.poke()
      clock.advance(100)
    }
    clock.advance(1000)
    expect(times[0]).toBe(1000)
    expect(times.every((at, i) => i === 0 || at - times[i - 1]! <= 1000)).toBe(true)
  })

  it('can fire at once or be cancelled', () => {
    const clock = new Clock()
    let fired = 0
    const debouncer = new Debouncer(() => fired++, 300, 1000, clock)
    debouncer.flush()
    expect(fired).toBe(0)  // nothing pending
    debouncer.poke()
    debouncer.flush()
    expect(fired).toBe(1)
    debouncer.poke()
    debouncer.cancel()
    clock.advance(2000)
    expect(fired).toBe(1)
  })
})

describe('following the live feed', () => {
  function start(institution?: string) {
    const clock = new Clock()
    let source: FakeSource | undefined
    const open: LiveSourceFactory = (url) => (source = new FakeSource(url)) as never
    const changes: ChangeReason[] = []
    const states: LiveState[] = []
    const stop = followLive({ onChange: (r) => changes.push(r), onState: (s) => states.push(s) },
      { open, timers: clock, institution, debounceMs: 300, maxWaitMs: 1000 })
    return { clock, source: source!, changes, states, stop }
  }

  it('reads again once a moment after relevant events, never for progress', () => {
    const { clock, source, changes, states } = start()
    expect(source.url).toBe('/api/events')
    source.onopen?.call({} as EventSource, new Event('open'))
    source.emit('ready', { cursor: 5, resumed: false, replayed: 0 })
    clock.advance(400)
    expect(changes).toEqual(['opened'])
    source.emit('job', job('progress'))
    source.emit('job', job('log'))
    clock.advance(2000)
    expect(changes).toEqual(['opened'])
    source.emit('job', job('status'))
    source.emit('alert', { state: 'opened', alert: {} })
    source.emit('job', 'not json')
    clock.advance(299)
    expect(changes).toHaveLength(1)
    clock.advance(1)
    expect(changes).toEqual(['opened', 'alert'])
    expect(states).toEqual(['connecting', 'live', 'live'])
  })

  it('reads again at once on a resync, says when it is reconnecting, and stops', () => {
    const { clock, source, changes, states, stop } = start('hosp-a')
    expect(source.url).toBe('/api/events?institution=hosp-a')
    source.emit('resync', { reason: 'too_many_events' })
    expect(changes).toEqual(['resync'])
    source.onerror?.call({} as EventSource, new Event('error'))
    expect(states.at(-1)).toBe('retrying')
    source.emit('agent', { state: 'offline', agent: {} })
    stop()
    clock.advance(5000)
    expect(changes).toEqual(['resync'])
    expect(source.closed).toBe(true)
  })
})
