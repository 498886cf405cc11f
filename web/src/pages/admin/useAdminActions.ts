// What the pages' actions share: asking before a change (a confirmation, or a prompt for
// an optional note), sending it with its success or failure said as a message, the
// signed-in user as the access rules see them, and names shown in the console's words.
import { computed } from 'vue'
import { useI18n } from 'vue-i18n'
import { useSession } from '@/stores/session'
import { errorText } from '@/util/errors'
import type { Viewer } from './access'

export interface Ask {
  message: string
  title: string
  /** The buttons' words (default: common.confirm, common.cancel). */
  confirm?: string
  cancel?: string
  type?: 'info' | 'warning'
}

export function useAdminActions() {
  const { t, te } = useI18n()
  const session = useSession()

  const options = (ask: Ask) => ({ type: ask.type ?? 'warning', confirmButtonText: ask.confirm ?? t('common.confirm'),
    cancelButtonText: ask.cancel ?? t('common.cancel') })

  /** Whether the person confirmed (false when they cancelled or closed the box). */
  async function confirmed(ask: Ask): Promise<boolean> {
    try {
      await ElMessageBox.confirm(ask.message, ask.title, options(ask))
      return true
    } catch {
      return false
    }
  }

  /** The note typed (trimmed, maybe empty), or null when the person cancelled. */
  async function noted(ask: Ask): Promise<string | null> {
    try {
      const answer = await ElMessageBox.prompt(ask.message, ask.title,
        { ...options(ask), inputPlaceholder: t('admin.common.notePlaceholder') })
      return (answer as { value: string }).value?.trim() ?? ''
    } catch {
      return null
    }
  }

  /** Run a request; `done` said on success, the failure said in the console's words.
   * Whether it succeeded. */
  async function send(work: () => Promise<unknown>, done?: string): Promise<boolean> {
    try {
      await work()
      if (done) ElMessage.success(done)
      return true
    } catch (error) {
      ElMessage.error(errorText(t, te, error))
      return false
    }
  }

  /** A text of the console when it has one for `key`, else the server's word as is. */
  const textOr = (key: string, raw: string) => te(key) ? t(key) : raw
  const roleName = (role: string) => textOr(`roles.${role}`, role)

  const me = computed<Viewer>(() => ({ name: session.user?.name ?? '',
    institution: session.user?.institution ?? null, roles: session.user?.roles ?? [] }))

  return { confirmed, noted, send, textOr, roleName, me }
}
