import type { Source } from '../db/events.ts'
import { InputError } from '../errors.ts'
import type { IngestProducer } from '../jobs/queues.ts'
import { normaliseMessage, type IngestMessage, type MessageProblem, type MessageType } from '../segment/normalise.ts'
import { isForwardedCall } from '../outbox/forwarded.ts'

export interface RejectedMessage {
  index: number
  messageId: string | null
  error: MessageProblem
}

/** Told what each request's messages came to (for metrics). */
export type AcceptObserver = (source: string, accepted: number, rejected: readonly RejectedMessage[]) => void

export interface AcceptOptions {
  observe?: AcceptObserver
  source: Source
  receivedAt: string
  honourReceivedAt?: boolean
  typeFromPath?: MessageType
  /** A batch-level `context`, merged under each message's own (Segment's batch API). */
  batchContext?: Record<string, unknown>
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Segment's batch API: a batch-level `context` lies under each message's own.
 * A message whose own `context` is not an object is left as sent, so that
 * validation rejects it (spreading a string would turn it into {0: …}).
 */
function withBatchContext(input: unknown, batchContext: Record<string, unknown> | undefined): unknown {
  if (!batchContext || !isPlainObject(input)) return input
  const own = input.context
  if (own !== undefined && own !== null && !isPlainObject(own)) return input
  return { ...input, context: { ...batchContext, ...(own ?? {}) } }
}

/**
 * Validates each message; the valid ones are normalised, the rest listed with
 * their problem. A messageId repeated within the request is, like one seen in
 * an earlier request, accepted and ignored: only its first occurrence is
 * queued, so the log row and the effects persisted with it (traits, merges,
 * deliveries) all come from the same message.
 */
export function sortMessages(inputs: readonly unknown[], opts: AcceptOptions) {
  const accepted: IngestMessage[] = []
  const rejected: RejectedMessage[] = []
  const seen = new Set<string>()
  let bytes = 0
  let ignored = 0
  inputs.forEach((input, index) => {
    const result = normaliseMessage(withBatchContext(input, opts.batchContext), opts)
    if (result.ok) {
      // goalpost's own forwarded conversions, back through the same source: accepted, never stored (no loops).
      if (isForwardedCall(result.message)) return void ignored++
      if (seen.has(result.message.messageId)) return
      seen.add(result.message.messageId)
      accepted.push(result.message)
      bytes += result.bytes
    } else {
      const id = isPlainObject(input) ? input.messageId : undefined
      rejected.push({ index, messageId: typeof id === 'string' || typeof id === 'number' ? String(id) : null, error: result.error })
    }
  })
  return { accepted, rejected, bytes, ignored }
}

/**
 * Accepts a list of messages as one queued batch (CONTRACT.md, HTTP): the valid
 * ones are queued together and the answer lists the rejected ones; a request
 * in which nothing is valid is a 400. Resolves only once Redis has the batch.
 */
export async function acceptMessages(
  producer: IngestProducer,
  inputs: readonly unknown[],
  opts: AcceptOptions,
): Promise<{ success: true; rejected?: RejectedMessage[] }> {
  if (inputs.length === 0) throw new InputError(400, 'empty_batch', 'batch holds no messages')
  const { accepted, rejected, bytes, ignored } = sortMessages(inputs, opts)
  opts.observe?.(opts.source, 0, rejected)
  if (accepted.length === 0 && ignored > 0) return rejected.length > 0 ? { success: true, rejected } : { success: true }
  if (accepted.length === 0) {
    const [first] = rejected
    const message =
      inputs.length === 1 ? first.error.message : `none of the ${inputs.length} messages is valid; first: ${first.error.message}`
    throw new InputError(400, first.error.code, message, { rejected })
  }
  await producer.enqueue({ source: opts.source, messages: accepted }, bytes)
  opts.observe?.(opts.source, accepted.length, [])
  return rejected.length > 0 ? { success: true, rejected } : { success: true }
}
