import { computed, type Ref } from 'vue'
import { asApiError, type ApiError } from './api/client'
import { fieldErrorText, problemText } from './problems'
import { useCall } from './useCall'

/** How an owner's link failed: it expired, it was used (it works once), or it is no link at all. */
export type LinkProblem = 'expired' | 'used' | 'unknown'

/** The dealer an owner's page names at its top and calls from its footer. */
export interface Dealer {
  name: string
  phone?: string | null
}

/** What `failure` says of the link, when it is about the link. */
export function linkProblem(failure: ApiError | null): LinkProblem | null {
  if (failure?.status === 404 && failure.problem.code === 'link_not_found') return 'unknown'
  if (failure?.status === 410) return failure.problem.code === 'link_expired' ? 'expired' : 'used'
  return null
}

/**
 * A read through an owner's link: its answer, how the link failed, and the dealer to show,
 * from the answer or, for a link that expired or was used, from the host's problem.
 */
export function useOwnerLink<T>(call: () => Promise<T>, dealerOf: (data: T) => Dealer) {
  const read = useCall(call)
  const problem = computed(() => linkProblem(read.failure.value))
  const dealer = computed<Dealer | null>(() => {
    if (read.data.value) return dealerOf(read.data.value)
    const found = read.failure.value?.problem
    return found?.dealer_name ? { name: found.dealer_name, phone: found.dealer_phone } : null
  })
  return { ...read, problem, dealer }
}

/**
 * Sends what the owner answered through the link: while it runs `sending` is on; a link that
 * expired or was used meanwhile turns the page into its problem; any other failure becomes
 * words in `error` beside the form.
 */
export async function sendThroughLink(
  link: { data: Ref<unknown>; failure: Ref<ApiError | null> },
  state: { sending: Ref<boolean>; error: Ref<string> },
  send: () => Promise<void>,
): Promise<void> {
  state.sending.value = true
  state.error.value = ''
  try {
    await send()
  } catch (e) {
    const error = asApiError(e)
    if (linkProblem(error)) {
      link.data.value = null
      link.failure.value = error
      return
    }
    const field = error.problem.errors?.[0]
    state.error.value = field ? fieldErrorText(field) : problemText(error)
  } finally {
    state.sending.value = false
  }
}
