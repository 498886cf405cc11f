// An API error as a sentence of the console's language: errors.<code> when the console
// knows the code, else the server's own one-line message with its code.
import type { Translate } from './format'

export interface Coded {
  code: string
  message: string
  retryAfter?: number | null
}

function isCoded(error: unknown): error is Coded {
  return typeof error === 'object' && error !== null
    && typeof (error as Coded).code === 'string' && typeof (error as Coded).message === 'string'
}

export function errorText(t: Translate, te: (key: string) => boolean, error: unknown): string {
  if (!isCoded(error)) return t('errors.generic', { code: 'client', message: String(error) })
  const key = `errors.${error.code}`
  const values = { message: error.message, code: error.code,
    seconds: Math.ceil(error.retryAfter ?? 60) }
  return te(key) ? t(key, values) : t('errors.generic', values)
}
