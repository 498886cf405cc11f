// The signed-in user (GET /api/me) and what their roles allow.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, ApiError } from '@/api/client'
import type { Institution, Me } from '@/api/types'
import { permissionsOf } from '@/auth/roles'
import { menuFor } from '@/auth/menu'
import { setDisplayTimeZone } from '@/util/format'

export const useSession = defineStore('session', () => {
  const user = ref<Me | null>(null)
  const checked = ref(false)
  /** The title of the user's institution (GET /api/institutions), for the header. */
  const institutionTitle = ref('')

  const permissions = computed(() => permissionsOf(user.value?.roles ?? []))
  const menu = computed(() => menuFor(user.value?.roles ?? []))
  /** Signed in with nothing outstanding (no password change or enrolment pending). */
  const ready = computed(() => !!user.value && !user.value.password_change_required
    && !user.value.totp_enrolment_required)

  function can(permission: string): boolean {
    return permissions.value.has(permission)
  }

  /** Who is signed in, asked once per page load (and after a sign-in). */
  async function load(force = false): Promise<Me | null> {
    if (checked.value && !force) return user.value
    try {
      user.value = (await api.get<{ user: Me }>('/api/me')).user
      setDisplayTimeZone(user.value.timezone)
    } catch (error) {
      if (!(error instanceof ApiError) || ![401, 403].includes(error.status)) throw error
      user.value = null
    }
    checked.value = true
    return user.value
  }

  async function loadInstitution(): Promise<void> {
    const own = user.value?.institution
    if (!own) return
    try {
      const reply = await api.get<{ institutions: Institution[] }>('/api/institutions')
      institutionTitle.value = reply.institutions.find((i) => i.name === own)?.title ?? ''
    } catch {
      institutionTitle.value = ''
    }
  }

  function signedIn(me: Me): void {
    user.value = me
    setDisplayTimeZone(me.timezone)
    checked.value = true
  }

  function forget(): void {
    user.value = null
    setDisplayTimeZone(null)
    checked.value = true
    institutionTitle.value = ''
  }

  async function logout(): Promise<void> {
    try {
      await api.post('/api/logout')
    } catch (error) {
      if (!(error instanceof ApiError)) throw error
    }
    forget()
  }

  return { user, checked, institutionTitle, loadInstitution, permissions, menu, ready, can, load, signedIn, forget, logout }
})
