import { describe, expect, it } from 'vitest'
import { followJob, isFinal, type SourceFactory, type StreamState } from '@/api/events'
import type { JobEvent } from '@/api/types'

/** An EventSource stand-in that the test feeds with server-sent events. */
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
    for (const listener of this.listeners.get(kind) ?? []) {
      listener(new MessageEvent(kind, { data }))
    }
  }
}

const event = (id: number, kind: JobEvent['kind'], data: Record<string, unknown>) =>
  JSON.stringify({ id, job_id: 7, at: '2026-12-06T05:30:01Z', kind, data })

describe('a job\'s event stream', () => {
  it('delivers status, progress and log events, and closes after the final status', () => {
    let source: FakeSource | undefined
    const open: SourceFactory = (url) => (source = new FakeSource(url)) as never
    const seen: JobEvent[] = []
    const states: StreamState[] = []
    followJob(7, { onEvent: (e) => seen.push(e), onState: (s) => states.push(s) }, open)
    expect(source?.url).toBe('/api/jobs/7/events')
    source!.onopen?.call({} as EventSource, new Event('open'))
    source!.emit('status', event(1, 'status', { status: 'running', agent: 'a' }))
    source!.emit('progress', event(2, 'progress', { percent: 50 }))
    source!.emit('log', event(3, 'log', { message: 'hello' }))
    source!.emit('log', 'not json')
    expect(source!.closed).toBe(false)
    source!.emit('status', event(4, 'status', { status: 'succeeded' }))
    expect(seen.map((e) => e.id)).toEqual([1, 2, 3, 4])
    expect(source!.closed).toBe(true)  // no reconnect after the end
    expect(states).toEqual(['connecting', 'live', 'ended'])
  })

  it('says it is retrying when the connection drops before the end', () => {
    let source: FakeSource | undefined
    const states: StreamState[] = []
    followJob(8, { onEvent: () => {}, onState: (s) => states.push(s) },
      (url) => (source = new FakeSource(url)) as never)
    source!.onerror?.call({} as EventSource, new Event('error'))
    expect(states.at(-1)).toBe('retrying')
  })

  it('knows the final statuses', () => {
    const status = (s: string) => JSON.parse(event(1, 'status', { status: s })) as JobEvent
    expect(['succeeded', 'failed', 'cancelled'].map((s) => isFinal(status(s))))
      .toEqual([true, true, true])
    expect(isFinal(status('running'))).toBe(false)
    expect(isFinal(JSON.parse(event(1, 'log', { status: 'failed' })) as JobEvent)).toBe(false)
  })
})
