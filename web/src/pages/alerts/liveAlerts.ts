// The alert changes of the console's live stream (GET /api/events, docs/server.md):
// `alert` events as they come; `ready` when the stream (re)opens, after which the list
// is read again (alert changes are not replayed); `resync` likewise. The browser's
// EventSource reconnects by itself; `close` stops it.
import type { SourceFactory, StreamState } from '@/api/events'
import type { AlertEvent } from './alertsModel'

export interface AlertStreamHandlers {
  onAlert: (event: AlertEvent) => void
  /** The stream (re)opened or asked for a resync: read the list again. */
  onReload: () => void
  onState: (state: StreamState) => void
}

const browserSource: SourceFactory = (url) => new EventSource(url, { withCredentials: true })

export function followAlerts(handlers: AlertStreamHandlers, open: SourceFactory = browserSource): () => void {
  const source = open('/api/events')
  handlers.onState('connecting')
  source.onopen = () => handlers.onState('live')
  source.onerror = () => handlers.onState(source.readyState === 2 ? 'ended' : 'retrying')
  source.addEventListener('alert', (message: Event) => {
    try {
      const event = JSON.parse((message as MessageEvent<string>).data) as AlertEvent
      if (event && typeof event.alert?.id === 'number') handlers.onAlert(event)
    } catch {
      // a malformed event is ignored; the next ready reloads the list
    }
  })
  for (const kind of ['ready', 'resync']) source.addEventListener(kind, () => handlers.onReload())
  return () => source.close()
}
