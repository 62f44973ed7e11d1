import { ref, type Ref } from 'vue'
import { asApiError, type ApiError } from './api/client'
import { problemText } from './problems'

/** One read: its answer, whether it is under way, and the words for its failure. */
export function useCall<T>(call: () => Promise<T>) {
  const data = ref(null) as Ref<T | null>
  const loading = ref(false)
  const error = ref('')
  const failure = ref<ApiError | null>(null)

  async function run(): Promise<T | null> {
    loading.value = true
    error.value = ''
    failure.value = null
    try {
      data.value = await call()
    } catch (e) {
      const apiError = asApiError(e)
      failure.value = apiError
      error.value = problemText(apiError)
    } finally {
      loading.value = false
    }
    return data.value
  }

  return { data, loading, error, failure, run }
}
