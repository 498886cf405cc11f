// A database's point-in-time restore (issue 17): the second typed or picked in the
// hospital's time zone, checked against the windows the agents report (GET …/recovery),
// sent in UTC. The date-time picker works on wall-clock strings (`YYYY-MM-DD HH:mm:ss`)
// that mean the hospital's zone whatever the PC's zone is, so nothing here reads the
// browser's zone. Pure functions, milliseconds since the epoch.
import type { LogWindow } from './types'
import type { Span } from './timeline'

/** The form the text field takes and the date-time picker gives. */
export const WALL_FORMAT = 'YYYY-MM-DD HH:mm:ss'
const WALL = /^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})\s*$/

/** A calendar date and time of day, as a clock on the wall shows it. */
export interface Wall {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatter(zone: string): Intl.DateTimeFormat {
  let found = formatters.get(zone)
  if (!found) {
    found = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23',
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
      second: '2-digit' })
    formatters.set(zone, found)
  }
  return found
}

/** What the wall clock in `zone` shows at a moment. */
export function wallAt(at: number, zone: string): Wall {
  const parts: Record<string, number> = {}
  for (const part of formatter(zone).formatToParts(new Date(at))) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value)
  }
  return { year: parts.year ?? 0, month: parts.month ?? 1, day: parts.day ?? 1,
    hour: (parts.hour ?? 0) % 24, minute: parts.minute ?? 0, second: parts.second ?? 0 }
}

const utcOf = (w: Wall) => Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second)

/** How far `zone`'s clock is ahead of UTC at a moment, in milliseconds. */
export function zoneOffset(at: number, zone: string): number {
  const second = Math.floor(at / 1000) * 1000
  return utcOf(wallAt(second, zone)) - second
}

/** The moment a wall-clock time in `zone` names: of a time the clock shows twice (autumn
 * back) the first, of one it skips (spring forward) the moment as many minutes after the
 * jump (02:30 is 03:30). The zone's offsets a day either side are the two candidates. */
export function wallToUtc(wall: Wall, zone: string): number {
  const guess = utcOf(wall)
  const before = guess - zoneOffset(guess - 86_400_000, zone)
  const after = guess - zoneOffset(guess + 86_400_000, zone)
  const text = formatWallOf(normalise(wall))
  const valid = [before, after].filter((at) => formatWall(at, zone) === text)
  return valid.length ? Math.min(...valid) : before
}

/** A wall time with its overflow carried (day 32 is the 1st of the next month). */
function normalise(wall: Wall): Wall {
  const d = new Date(utcOf(wall))
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(),
    hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() }
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

function formatWallOf(w: Wall): string {
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`
}

/** A moment as `YYYY-MM-DD HH:mm:ss` on `zone`'s clock. */
export function formatWall(at: number, zone: string): string {
  return formatWallOf(wallAt(at, zone))
}

/** A typed `YYYY-MM-DD HH:mm:ss` (or with a T) in `zone` as a moment, or why not:
 * 'format' (not that form, or no such date) or 'skipped' (the zone's clock jumps over
 * it). */
export function parseWall(text: string, zone: string): number | 'format' | 'skipped' {
  const m = WALL.exec(text)
  if (!m) return 'format'
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as
    [number, number, number, number, number, number]
  const wall = { year, month, day, hour, minute, second }
  const probe = new Date(utcOf(wall))
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59
      || probe.getUTCDate() !== day || probe.getUTCMonth() !== month - 1) return 'format'
  const at = wallToUtc(wall, zone)
  return formatWall(at, zone) === formatWallOf(wall) ? at : 'skipped'
}

/** A moment as the API takes it: ISO 8601 in UTC to the second, with Z. */
export function utcIso(at: number): string {
  return new Date(Math.floor(at / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** The zone's offset as people read it: "UTC+08:00". */
export function offsetLabel(at: number, zone: string): string {
  const minutes = Math.round(zoneOffset(at, zone) / 60_000)
  const sign = minutes < 0 ? '-' : '+'
  const abs = Math.abs(minutes)
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
}

/** The window nearest a moment outside every window (the one whose closer end is
 * closest; on a tie the later), and that end; null without windows. */
export function nearestWindow(at: number, windows: readonly Span[]
): { window: Span; bound: number } | null {
  let best: { window: Span; bound: number } | null = null
  let distance = Infinity
  for (const window of windows) {
    const bound = at < window.start ? window.start : at > window.end ? window.end : at
    const d = Math.abs(bound - at)
    if (d <= distance) {
      best = { window, bound }
      distance = d
    }
  }
  return best
}

/** Whether any window has a second inside [start, end]. */
export function touches(start: number, end: number, windows: readonly Span[]): boolean {
  return windows.some((w) => w.start <= end && w.end >= start)
}

/** Whether a calendar day of `zone` has any second inside a window (the picker's
 * days without one are disabled; its hours, minutes and seconds below). */
export function dayHasWindow(year: number, month: number, day: number, zone: string,
  windows: readonly Span[]): boolean {
  const start = wallToUtc({ year, month, day, hour: 0, minute: 0, second: 0 }, zone)
  const end = wallToUtc({ year, month, day: day + 1, hour: 0, minute: 0, second: 0 }, zone) - 1000
  return touches(start, end, windows)
}

/** The hours (0-23) of a day of `zone` without a second inside a window. */
export function disabledHours(date: Omit<Wall, 'hour' | 'minute' | 'second'>, zone: string,
  windows: readonly Span[]): number[] {
  return range(24).filter((hour) => {
    const start = wallToUtc({ ...date, hour, minute: 0, second: 0 }, zone)
    return !touches(start, start + 3_599_000, windows)
  })
}

/** The minutes of an hour of a day of `zone` without a second inside a window. */
export function disabledMinutes(date: Omit<Wall, 'minute' | 'second'>, zone: string,
  windows: readonly Span[]): number[] {
  return range(60).filter((minute) => {
    const start = wallToUtc({ ...date, minute, second: 0 }, zone)
    return !touches(start, start + 59_000, windows)
  })
}

/** The seconds of a minute of `zone` outside every window. */
export function disabledSeconds(date: Omit<Wall, 'second'>, zone: string,
  windows: readonly Span[]): number[] {
  return range(60).filter((second) => {
    const at = wallToUtc({ ...date, second }, zone)
    return !touches(at, at, windows)
  })
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i)
}

/** One database source that can be restored to a moment: a reported window of one
 * plan's source that holds it. */
export interface PitrSource {
  plan: string
  source: string
  kind: string
  start: number
  end: number
  base: string
  agent: string
  gapAfter: boolean
  /** When the agent reported the window (the newest report wins). */
  reportedAt?: string
}

/** The key a source is chosen by (plan and source name). */
export const sourceKey = (s: { plan: string; source: string }) => `${s.plan}/${s.source}`

/** The plans' sources whose reported windows hold a moment, once each (the latest
 * reported window when several hold it), in the order of the windows. */
export function sourcesAt(at: number, windows: readonly LogWindow[]): PitrSource[] {
  const found = new Map<string, PitrSource>()
  for (const w of windows) {
    const start = Date.parse(w.start)
    const end = Date.parse(w.end)
    if (!w.plan || !w.source || !(at >= start && at <= end)) continue
    const source: PitrSource = { plan: w.plan, source: w.source, kind: w.kind, start, end,
      base: w.base ?? '', agent: w.agent ?? '', gapAfter: Boolean(w.gap_after) }
    const before = found.get(sourceKey(source))
    if (!before || (w.reported_at ?? '') > (before.reportedAt ?? '')) {
      found.set(sourceKey(source), { ...source, reportedAt: w.reported_at ?? '' })
    }
  }
  return [...found.values()]
}

/** The targets offered for a source: those of the agent that reported its window when
 * it declares any, else every agent's (online ones first). */
export function targetsFor(agent: string, agents: readonly { agent: string; state: string;
  targets: string[] }[]): string[] {
  const own = agents.find((a) => a.agent === agent)
  if (own?.targets.length) return [...new Set(own.targets)]
  const ordered = [...agents].sort((a, b) => Number(b.state === 'online') - Number(a.state === 'online'))
  return [...new Set(ordered.flatMap((a) => a.targets))]
}
