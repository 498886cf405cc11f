// The institutions in scope (GET /api/institutions), for the pages' selects.
import { onMounted, ref } from 'vue'
import { api } from '@/api/client'
import type { Institution } from '@/api/types'

export function useInstitutions() {
  const institutions = ref<Institution[]>([])
  const titleOf = (name: string) => institutions.value.find((i) => i.name === name)?.title || name
  onMounted(async () => {
    try {
      institutions.value = (await api.get<{ institutions: Institution[] }>('/api/institutions')).institutions
    } catch {
      institutions.value = []
    }
  })
  return { institutions, titleOf }
}
