// A job's events as Server-Sent Events (GET /api/jobs/{id}/events): the browser's
// EventSource sends the session cookie (same origin) and, when it reconnects, the last
// event's id, from which the server resumes. The server ends the stream after the
// job's final status; the stream is closed then, so the browser does not reconnect.
import type { JobEvent } from './types'

export const FINAL = new Set(['succeeded', 'failed', 'cancelled'])
export type StreamState = 'connecting' | 'live' | 'retrying' | 'ended'

export interface StreamHandlers {
  onEvent: (event: JobEvent) => void
  onState: (state: StreamState) => void
}

type Source = Pick<EventSource, 'addEventListener' | 'close' | 'readyState'> & {
  onopen: ((this: EventSource, ev: Event) => unknown) | null
  onerror: ((this: EventSource, ev: Event) => unknown) | null
}
export type SourceFactory = (url: string) => Source

const browserSource: SourceFactory = (url) => new EventSource(url, { withCredentials: true })

/** Whether this event is the job's last: a status that ends it. */
export function isFinal(event: JobEvent): boolean {
  return event.kind === 'status' && FINAL.has(String(event.data.status ?? ''))
}

/** Follow a job's events until it ends or `close` is called. */
export function followJob(id: number, handlers: StreamHandlers,
  open: SourceFactory = browserSource): () => void {
  const source = open(`/api/jobs/${id}/events`)
  let ended = false
  const close = () => {
    source.close()
  }
  handlers.onState('connecting')
  source.onopen = () => handlers.onState('live')
  source.onerror = () => {
    if (!ended) handlers.onState(source.readyState === 2 ? 'ended' : 'retrying')
  }
  for (const kind of ['status', 'progress', 'log']) {
    source.addEventListener(kind, (message: Event) => {
      let event: JobEvent
      try {
        event = JSON.parse((message as MessageEvent<string>).data) as JobEvent
      } catch {
        return
      }
      handlers.onEvent(event)
      if (isFinal(event)) {
        ended = true
        close()
        handlers.onState('ended')
      }
    })
  }
  return close
}
