// The timeline of a system's recoverable moments: its snapshots as points and, for a
// database whose WAL or binlog is captured continuously, the windows in which any second
// can be chosen. Pure functions (milliseconds since the epoch), drawn by Timeline.vue.
import type { LogWindow, Point } from './types'

export interface Span {
  start: number
  end: number
}

export interface Domain {
  start: number
  end: number
}

/** What a chosen moment restores from: a snapshot as it is, or a moment inside a
 * window (the newest snapshot at or before it, then the log up to that second). */
export type Choice =
  | { kind: 'point'; point: Point; at: number }
  | { kind: 'window'; base: Point | null; window: Span; at: number }

export function ms(iso: string): number {
  return new Date(iso).getTime()
}

/** The windows as spans, valid ones only (start before end), overlapping or touching
 * ones merged, oldest first. */
export function mergeWindows(windows: readonly LogWindow[]): Span[] {
  const spans = windows.map((w) => ({ start: ms(w.start), end: ms(w.end) }))
    .filter((s) => Number.isFinite(s.start) && Number.isFinite(s.end) && s.start <= s.end)
    .sort((a, b) => a.start - b.start)
  const merged: Span[] = []
  for (const span of spans) {
    const last = merged[merged.length - 1]
    if (last && span.start <= last.end + 1000) last.end = Math.max(last.end, span.end)
    else merged.push({ ...span })
  }
  return merged
}

/** The time range drawn: every point and window, with a margin of 3 % each side (an
 * hour either side of a single moment). */
export function domainOf(points: readonly Point[], windows: readonly Span[]): Domain | null {
  const times = [...points.map((p) => ms(p.time)).filter(Number.isFinite),
    ...windows.flatMap((w) => [w.start, w.end])]
  if (!times.length) return null
  const start = Math.min(...times)
  const end = Math.max(...times)
  const margin = end > start ? (end - start) * 0.03 : 3_600_000
  return { start: start - margin, end: end + margin }
}

/** Where a moment is on the drawn range, 0 (left) to 1 (right), clamped. */
export function position(at: number, domain: Domain): number {
  if (domain.end <= domain.start) return 0.5
  return Math.min(1, Math.max(0, (at - domain.start) / (domain.end - domain.start)))
}

/** The moment at a position (0–1) of the drawn range, to the whole second. */
export function timeAt(fraction: number, domain: Domain): number {
  const clamped = Math.min(1, Math.max(0, fraction))
  return Math.round((domain.start + clamped * (domain.end - domain.start)) / 1000) * 1000
}

/** The window a moment is inside, or null. */
export function windowOf(at: number, windows: readonly Span[]): Span | null {
  return windows.find((w) => at >= w.start && at <= w.end) ?? null
}

/** The newest snapshot at or before a moment, or null. */
export function baseFor(at: number, points: readonly Point[]): Point | null {
  let best: Point | null = null
  for (const point of points) {
    const t = ms(point.time)
    if (t <= at && (!best || t >= ms(best.time))) best = point
  }
  return best
}

/** The snapshot nearest to a moment (on a tie, the older), or null. */
export function nearestPoint(at: number, points: readonly Point[]): Point | null {
  let best: Point | null = null
  let distance = Infinity
  for (const point of points) {
    const d = Math.abs(ms(point.time) - at)
    if (d < distance) {
      best = point
      distance = d
    }
  }
  return best
}

/** What a click at a moment chooses: inside a window, that second (to the whole
 * second); elsewhere the nearest snapshot; null when there is nothing. */
export function choose(at: number, points: readonly Point[], windows: readonly Span[]
): Choice | null {
  const second = Math.round(at / 1000) * 1000
  const window = windowOf(second, windows)
  if (window) return { kind: 'window', base: baseFor(second, points), window, at: second }
  const point = nearestPoint(at, points)
  return point ? { kind: 'point', point, at: ms(point.time) } : null
}

/** How precise a tick's label must be for the drawn range: seconds under ten minutes,
 * minutes under three days, else days. */
export function tickPrecision(domain: Domain): 'second' | 'minute' | 'day' {
  const span = domain.end - domain.start
  return span < 600_000 ? 'second' : span < 3 * 86_400_000 ? 'minute' : 'day'
}

/** Evenly spaced tick times (about `count`), on whole hours or days when the range
 * allows. */
export function ticks(domain: Domain, count = 6): number[] {
  const span = domain.end - domain.start
  if (span <= 0 || count < 1) return []
  const steps = [1000, 5000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000, 6 * 3_600_000, 12 * 3_600_000,
    86_400_000, 7 * 86_400_000, 30 * 86_400_000]
  const raw = span / count
  const step = steps.find((s) => s >= raw / 1.5) ?? Math.ceil(raw / 86_400_000) * 86_400_000
  const out: number[] = []
  for (let t = Math.ceil(domain.start / step) * step; t <= domain.end; t += step) out.push(t)
  return out
}
