// Numbers, sizes, durations and times for people, in the console's language. Times are
// shown in the hospital's time zone, which GET /api/me names (its configuration's
// `timezone`), whatever zone the PC's clock is set to; the browser's own until then.
import type { Job, JobProgress } from '@/api/types'

export type Translate = (key: string, values?: Record<string, unknown>) => string

let hospitalZone: string | null = null
let browserZone: string | undefined
/** Made once per language and zone: making one costs far more than using it (the
 * dashboard formats some 600 times as it draws a regional center's 200 systems). */
const dateTimeFormats = new Map<string, Intl.DateTimeFormat>()

/** Show times in `zone` from now on (the signed-in user's institution's zone); an
 * unknown zone is ignored. */
export function setDisplayTimeZone(zone: string | null | undefined): void {
  if (!zone) {
    hospitalZone = null
    return
  }
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone })
    hospitalZone = zone
  } catch {
    hospitalZone = null
  }
}

/** The time zone the console shows times in. */
export function displayTimeZone(): string {
  browserZone ??= Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
  return hospitalZone ?? browserZone
}

/** An ISO 8601 time as a date and time of the locale, in `timeZone`; '' for none. */
export function formatDateTime(iso: string | null | undefined, locale: string,
  timeZone: string = displayTimeZone()): string {
  if (!iso) return ''
  const when = new Date(iso)
  if (Number.isNaN(when.getTime())) return iso
  const key = `${locale}|${timeZone}`
  let format = dateTimeFormats.get(key)
  if (!format) {
    format = new Intl.DateTimeFormat(locale, {
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
      hour12: false, timeZone,
    })
    dateTimeFormats.set(key, format)
  }
  return format.format(when)
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** Bytes in binary units with the locale's digits: 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number | null | undefined, locale: string): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return ''
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit += 1
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1
  const number = new Intl.NumberFormat(locale, { maximumFractionDigits: digits,
    minimumFractionDigits: digits }).format(value)
  return `${number} ${UNITS[unit]}`
}

/** A duration in whole seconds as the locale says it: "45 秒", "3 min 05 s", "2 h 10 min". */
export function formatDuration(seconds: number | null | undefined, t: Translate): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return ''
  }
  const total = Math.round(seconds)
  if (total < 60) return t('units.seconds', { n: total })
  if (total < 3600) {
    return t('units.minutes', { m: Math.floor(total / 60),
      s: String(total % 60).padStart(2, '0') })
  }
  return t('units.hours', { h: Math.floor(total / 3600),
    m: String(Math.floor((total % 3600) / 60)).padStart(2, '0') })
}

/** The progress bar's percentage, 0-100 with one decimal; null when the job reported none. */
export function progressPercent(progress: JobProgress | null | undefined): number | null {
  if (!progress) return null
  let percent = progress.percent
  if ((percent === null || percent === undefined) && progress.bytes_total
      && progress.bytes_done !== null && progress.bytes_done !== undefined) {
    percent = (100 * progress.bytes_done) / progress.bytes_total
  }
  if (percent === null || percent === undefined || !Number.isFinite(percent)) return null
  return Math.round(Math.min(100, Math.max(0, percent)) * 10) / 10
}

/** Seconds left: the agent's own estimate, else from the percentage and the time since
 * the job started; null when neither is known or the job is not running. */
export function etaSeconds(job: Pick<Job, 'status' | 'progress' | 'started_at'>,
  now: number = Date.now()): number | null {
  if (job.status !== 'running' || !job.progress) return null
  const reported = job.progress.eta_seconds
  if (reported !== null && reported !== undefined && Number.isFinite(reported)) {
    return Math.max(0, reported)
  }
  const percent = progressPercent(job.progress)
  if (!percent || percent <= 0 || percent >= 100 || !job.started_at) return null
  const elapsed = (now - new Date(job.started_at).getTime()) / 1000
  if (!Number.isFinite(elapsed) || elapsed <= 0) return null
  return (elapsed * (100 - percent)) / percent
}
