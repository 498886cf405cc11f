// The institutions in scope (GET /api/institutions), for the pages' selects.
import { onMounted, ref } from 'vue'
import { api } from '@/api/client'
import type { Institution } from '@/api/types'
import { useSession } from '@/stores/session'

export function useInstitutions() {
  const session = useSession()
  const institutions = ref<Institution[]>([])
  const titleOf = (name: string) => institutions.value.find((i) => i.name === name)?.title || name
  /** A new item's institution at first: the user's own, else the first in scope. */
  const ownOrFirst = () => session.user?.institution ?? institutions.value[0]?.name ?? ''
  onMounted(async () => {
    try {
      institutions.value = (await api.get<{ institutions: Institution[] }>('/api/institutions')).institutions
    } catch {
      institutions.value = []
    }
  })
  return { institutions, titleOf, ownOrFirst }
}
