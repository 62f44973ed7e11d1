import { computed, ref, type Ref } from 'vue'
import { asApiError } from './api/client'
import { problemText } from './problems'

export interface PageOf<T> {
  items: T[]
  next_cursor?: string | null
}

/** A cursor-paginated list: the rows loaded so far, whether there are more, and the state of the last call. */
export function usePager<T>(fetchPage: (cursor: string | undefined) => Promise<PageOf<T>>) {
  const items = ref([]) as Ref<T[]>
  const nextCursor = ref<string | null>(null)
  const loading = ref(false)
  const error = ref('')
  let generation = 0

  async function load(cursor: string | undefined): Promise<void> {
    const mine = ++generation
    loading.value = true
    error.value = ''
    try {
      const page = await fetchPage(cursor)
      if (mine !== generation) return
      items.value = cursor ? [...items.value, ...page.items] : page.items
      nextCursor.value = page.next_cursor ?? null
    } catch (e) {
      if (mine !== generation) return
      if (!cursor) items.value = []
      error.value = problemText(asApiError(e))
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  return {
    items,
    loading,
    error,
    hasMore: computed(() => nextCursor.value !== null),
    empty: computed(() => items.value.length === 0),
    reload: () => load(undefined),
    loadMore: () => load(nextCursor.value ?? undefined),
  }
}
