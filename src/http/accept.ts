import type { Queue } from 'bullmq'
import type { Source } from '../db/events.ts'
import { InputError } from '../errors.ts'
import { enqueueBatch, type IngestJobData } from '../jobs/queues.ts'
import { normaliseMessage, type IngestMessage, type MessageProblem, type MessageType } from '../plugin/normalise.ts'

export interface RejectedMessage {
  index: number
  messageId: string | null
  error: MessageProblem
}

export interface AcceptOptions {
  source: Source
  receivedAt: string
  honourReceivedAt?: boolean
  typeFromPath?: MessageType
  /** A batch-level `context`, merged under each message's own (Segment's batch API). */
  batchContext?: Record<string, unknown>
}

/** Validates each message; the valid ones are normalised, the rest listed with their problem. */
export function sortMessages(inputs: readonly unknown[], opts: AcceptOptions) {
  const accepted: IngestMessage[] = []
  const rejected: RejectedMessage[] = []
  inputs.forEach((input, index) => {
    const withContext =
      opts.batchContext && input && typeof input === 'object' && !Array.isArray(input)
        ? { ...input, context: { ...opts.batchContext, ...((input as { context?: object }).context ?? {}) } }
        : input
    const result = normaliseMessage(withContext, opts)
    if (result.ok) accepted.push(result.message)
    else {
      const id = (input as { messageId?: unknown } | null)?.messageId
      rejected.push({ index, messageId: typeof id === 'string' ? id : null, error: result.error })
    }
  })
  return { accepted, rejected }
}

/**
 * Accepts a list of messages as one queued batch (CONTRACT.md, HTTP): the valid
 * ones are queued together and the answer lists the rejected ones; a request
 * in which nothing is valid is a 400. Resolves only once Redis has the batch.
 */
export async function acceptMessages(
  queue: Queue<IngestJobData>,
  inputs: readonly unknown[],
  opts: AcceptOptions,
): Promise<{ success: true; rejected?: RejectedMessage[] }> {
  if (inputs.length === 0) throw new InputError(400, 'empty_batch', 'batch holds no messages')
  const { accepted, rejected } = sortMessages(inputs, opts)
  if (accepted.length === 0) {
    const [first] = rejected
    const message =
      inputs.length === 1 ? first.error.message : `none of the ${inputs.length} messages is valid; first: ${first.error.message}`
    throw new InputError(400, first.error.code, message, { rejected })
  }
  await enqueueBatch(queue, { source: opts.source, messages: accepted })
  return rejected.length > 0 ? { success: true, rejected } : { success: true }
}
