// A page's list: the items, whether they are being read, and why the last read failed
// (shown above the table while it keeps the items it had).
import { ref, type Ref } from 'vue'
import { useI18n } from 'vue-i18n'
import { errorText } from '@/util/errors'

export interface AdminList<T> {
  items: Ref<T[]>
  loading: Ref<boolean>
  failure: Ref<string | null>
  /** Read again with the table's spinner. */
  load: () => Promise<void>
  /** Read again in the background (a poll): no spinner. */
  loadQuietly: () => Promise<void>
}

/** The list state itself; `describe` turns a failure into the words shown. */
export function listState<T>(fetch: () => Promise<T[]>, describe: (error: unknown) => string
): AdminList<T> {
  const items = ref([]) as Ref<T[]>
  const loading = ref(false)
  const failure = ref<string | null>(null)
  async function read(quiet: boolean): Promise<void> {
    if (!quiet) loading.value = true
    try {
      items.value = await fetch()
      failure.value = null
    } catch (error) {
      failure.value = describe(error)
    } finally {
      loading.value = false
    }
  }
  return { items, loading, failure, load: () => read(false), loadQuietly: () => read(true) }
}

/** A page's list, its failures in the console's language. */
export function useAdminList<T>(fetch: () => Promise<T[]>): AdminList<T> {
  const { t, te } = useI18n()
  return listState(fetch, (error) => errorText(t, te, error))
}
