// Items' states as a tone (the tag's colour and icon) and a text key, and the words of
// an approval's change: pure, so the tests read them without a page.
import type { ApprovalChange, TokenView, UserView } from './types'

export type Tone = 'good' | 'bad' | 'wait' | 'off' | 'warn'

const TONES: Record<string, Tone> = {
  // grants
  requested: 'wait', approved: 'good', denied: 'bad', revoked: 'off', expired: 'off',
  // approvals
  pending: 'wait', rejected: 'bad', failed: 'bad',
  // agents
  online: 'good', offline: 'bad', enrolled: 'wait',
  // tokens and users
  active: 'good', disabled: 'off', locked: 'warn',
}

export function toneOf(state: string): Tone {
  return TONES[state] ?? 'off'
}

/** A token: revoked, expired (by `now`) or active. */
export function tokenState(token: TokenView, now: number = Date.now()): 'active' | 'revoked' | 'expired' {
  if (token.revoked_at) return 'revoked'
  if (token.expires_at && new Date(token.expires_at).getTime() <= now) return 'expired'
  return 'active'
}

/** A user: disabled, locked (until a time still to come) or active. */
export function userState(user: UserView, now: number = Date.now()): 'active' | 'disabled' | 'locked' {
  if (user.disabled) return 'disabled'
  if (user.locked_until && new Date(user.locked_until).getTime() > now) return 'locked'
  return 'active'
}

/** An approval's change as text keys with values (admin.approvals.changes.*). */
export function changeParts(change: ApprovalChange): { key: string; message?: string }[] {
  const parts: { key: string; message?: string }[] = []
  if (change.roles) parts.push({ key: 'roles', message: change.roles.join(', ') })
  if (change.disabled === true) parts.push({ key: 'disable' })
  if (change.disabled === false) parts.push({ key: 'enable' })
  if (change.reset_password) parts.push({ key: 'password' })
  if (change.reset_totp) parts.push({ key: 'totp' })
  return parts
}

/** A list of names typed by a person (commas, spaces, 、 or new lines between). */
export function splitNames(text: string): string[] {
  return [...new Set(text.split(/[\s,，、;；]+/).map((part) => part.trim()).filter(Boolean))]
}

/** A grant's window: the end must follow the start, at most 30 days on. */
export function windowProblem(start: Date | null, end: Date | null, now: number = Date.now()
): 'missing' | 'order' | 'long' | null {
  if (!end) return 'missing'
  const from = start && start.getTime() > now ? start.getTime() : now
  if (end.getTime() <= from) return 'order'
  return end.getTime() - from > 30 * 86_400_000 ? 'long' : null
}

/** How long ago, in the locale's words ("3 分钟前", "2 hours ago"); '' for none. */
export function timeAgo(iso: string | null | undefined, locale: string, now: number = Date.now()
): string {
  if (!iso) return ''
  const then = new Date(iso).getTime()
  if (Number.isNaN(then)) return iso
  const seconds = Math.round((then - now) / 1000)
  const format = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' })
  const steps: [Intl.RelativeTimeFormatUnit, number][] = [['second', 60], ['minute', 60],
    ['hour', 24], ['day', 365]]
  let value = seconds
  for (const [unit, size] of steps) {
    if (Math.abs(value) < size) return format.format(value, unit)
    value = Math.round(value / size)
  }
  return format.format(value, 'year')
}
