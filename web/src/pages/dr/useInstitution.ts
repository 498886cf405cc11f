// The institution a page shows: a hospital's account sees its own; a regional center's
// account chooses one of those in scope (GET /api/institutions), kept in the URL's
// `?institution=` so a link or a reload shows the same one. Shared by the DR,
// compliance and reports pages.
import { computed, onMounted, ref, watch } from 'vue'
import { useRoute, useRouter } from 'vue-router'
import { api } from '@/api/client'
import type { Institution } from '@/api/types'
import { useSession } from '@/stores/session'

/** The institution to show first: the one asked for if in scope, else the account's
 * own, else the first hospital (not the center itself) of the list, else the first. */
export function pickInstitution(asked: string | null | undefined, own: string | null | undefined,
  list: readonly Pick<Institution, 'name' | 'kind'>[]): string {
  const names = list.map((i) => i.name)
  if (asked && names.includes(asked)) return asked
  if (own && names.includes(own) && list.find((i) => i.name === own)?.kind !== 'center') return own
  return list.find((i) => i.kind !== 'center')?.name ?? names[0] ?? own ?? ''
}

export function useInstitution() {
  const session = useSession()
  const route = useRoute()
  const router = useRouter()
  const institutions = ref<Institution[]>([])
  const current = ref('')
  const loaded = ref(false)
  const choosable = computed(() => institutions.value.filter((i) => i.kind !== 'center').length > 1
    || !!session.user?.regional_center)

  onMounted(async () => {
    try {
      institutions.value = (await api.get<{ institutions: Institution[] }>('/api/institutions'))
        .institutions
    } catch {
      institutions.value = []
    }
    const asked = typeof route.query.institution === 'string' ? route.query.institution : null
    current.value = pickInstitution(asked, session.user?.institution, institutions.value)
    loaded.value = true
  })

  watch(current, (name) => {
    if (name && route.query.institution !== name && choosable.value) {
      void router.replace({ query: { ...route.query, institution: name } })
    }
  })

  const label = (name: string) => institutions.value.find((i) => i.name === name)?.title || name
  return { institutions, current, loaded, choosable, label }
}
