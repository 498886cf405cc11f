// An API error as a sentence: the restore area's own wording for the codes it meets
// (restore.errors.<code>), else the console's (util/errors.ts).
import { ApiError } from '@/api/client'
import { errorText } from '@/util/errors'
import type { Translate } from '@/util/format'

export function restoreError(t: Translate, te: (key: string) => boolean, error: unknown): string {
  if (error instanceof ApiError && te(`restore.errors.${error.code}`)) {
    return t(`restore.errors.${error.code}`, { message: error.message })
  }
  return errorText(t, te, error)
}

export function isGrantRequired(error: unknown): boolean {
  return error instanceof ApiError && error.code === 'grant_required'
}
