import type { Job } from 'bullmq'
import type { Knex } from 'knex'
import type { Logger } from '../logger.ts'
import type { EvaluationContext } from './evaluate.ts'
import { recordRejected } from '../db/rejected.ts'
import { rawPersonId } from '../db/events.ts'
import type { IngestJobData } from './queues.ts'
import type { IngestMessage } from '../segment/normalise.ts'
import { persistGroup, StaleConfigurationError, type BatchPart, type PartOutcome } from './persist-batch.ts'
import { GroupCommitter, type Settled } from './group-commit.ts'

/**
 * SQLSTATE classes a message itself causes (bad data, a broken constraint, a
 * value past a limit): retrying cannot help, so such a message is rejected.
 * Anything else (connection loss, deadlock, shutdown, a bug) is transient as
 * far as the message is concerned and the job is retried with backoff.
 */
const PERMANENT_SQLSTATE_CLASSES = new Set(['22', '23', '54'])

export function isPermanentDbError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code
  return typeof code === 'string' && code.length === 5 && PERMANENT_SQLSTATE_CLASSES.has(code.slice(0, 2))
}

/**
 * Postgres' own message: knex prefixes it with the statement (`<sql> - <message>`),
 * which says nothing about the message and can be long. None of the ingest
 * statements contains " - ", so the first one is the separator.
 */
function postgresMessage(err: Error): string {
  const at = err.message.indexOf(' - ')
  return at === -1 ? err.message : err.message.slice(at + 3)
}

/** What a job did, in counts (kept small: it is the job's return value in Redis). */
export interface IngestResult {
  inserted: number
  duplicates: number
  rejected: number
  merges: number
  deliveries: number
  evaluated: number
}

export interface IngestDeps {
  db: Knex
  log: Logger
  /** The configuration in force (delivery events and what to evaluate); `fresh` skips any cache. */
  context: (opts?: { fresh?: boolean }) => Promise<EvaluationContext>
}

/**
 * persistGroup under the configuration in force: a transaction that finds
 * the configuration replaced while it ran rolls back (StaleConfigurationError)
 * and runs again at once with the new one (the cache lags a save by up to a
 * second).
 */
async function persistFresh(deps: IngestDeps, parts: readonly BatchPart[]) {
  for (let attempt = 1; ; attempt++) {
    const ctx = await deps.context(attempt === 1 ? {} : { fresh: true })
    try {
      return await persistGroup(deps.db, parts, ctx)
    } catch (err) {
      if (!(err instanceof StaleConfigurationError) || attempt >= 5) throw err
    }
  }
}

const add = (total: IngestResult, o: PartOutcome) => {
  total.inserted += o.inserted
  total.duplicates += o.duplicates
  total.merges += o.merges
  total.deliveries += o.deliveries
  total.evaluated += o.evaluated
  return total
}

const empty = (): IngestResult => ({ inserted: 0, duplicates: 0, rejected: 0, merges: 0, deliveries: 0, evaluated: 0 })

export interface IngestPart extends BatchPart {
  jobId?: string
}

/**
 * Persists a group of queued batches (group commit), falling back when
 * Postgres refuses a message (SQLSTATE 22, 23, 54): each batch on its own,
 * then a refused batch one message at a time, so one bad message costs only
 * itself and lands in `rejected_messages` with its reason. A transient error
 * fails the group's jobs, which BullMQ retries with backoff.
 */
export async function persistParts(deps: IngestDeps, parts: readonly IngestPart[]): Promise<Settled<IngestResult>[]> {
  try {
    const outcome = await persistFresh(deps, parts)
    return outcome.parts.map((p) => ({ ok: true, value: add(empty(), p) }))
  } catch (err) {
    if (!isPermanentDbError(err)) throw err
    // Not the error itself: its message holds the whole statement.
    const { code } = err as { code: string }
    deps.log.warn(
      { code, reason: postgresMessage(err as Error), jobIds: parts.map((p) => p.jobId) },
      parts.length > 1 ? 'a batch of the group holds a message Postgres refuses; storing the batches one by one' : 'batch holds a message Postgres refuses; storing its messages one by one',
    )
  }
  if (parts.length > 1) {
    const settled: Settled<IngestResult>[] = []
    for (const part of parts) {
      try {
        settled.push(...(await persistParts(deps, [part])))
      } catch (error) {
        settled.push({ ok: false, error })
      }
    }
    return settled
  }
  const { source, messages } = parts[0]
  const total = empty()
  for (const message of messages) {
    try {
      const outcome = await persistFresh(deps, [{ source, messages: [message] }])
      add(total, outcome.parts[0])
    } catch (err) {
      if (!isPermanentDbError(err)) throw err
      total.rejected += 1
      const reason = `${(err as { code: string }).code}: ${postgresMessage(err as Error)}`
      deps.log.warn({ messageId: message.messageId, reason }, 'message rejected by Postgres')
      await recordRejected(deps.db, source, [
        { messageId: message.messageId, receivedAt: message.receivedAt, reason, payload: message },
      ])
    }
  }
  return [{ ok: true, value: total }]
}

export interface IngestProcessorOptions {
  /** Transactions at once: one per shard of people. */
  concurrency: number
  /** Most messages one transaction persists (a larger part goes alone). */
  maxGroupMessages: number
}

/** FNV-1a: a cheap, stable spread of ids over shards. */
function shardOf(id: string, shards: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  return (h >>> 0) % shards
}

/**
 * The BullMQ processor for ingest jobs. A job's messages are split by person
 * (userId, else anonymousId) over `concurrency` shards; each shard persists
 * what waits for it as one group (GroupCommitter), one transaction at a time.
 * Concurrent transactions then rarely touch the same person, so they seldom
 * wait on each other's locks (which still guarantee correctness when they
 * do, e.g. around identity merges). A job completes only when every
 * transaction holding its messages has committed; if one fails, the job fails
 * and its retry re-runs the whole batch, the committed part being duplicates.
 */
export function createIngestProcessor(deps: IngestDeps, opts: IngestProcessorOptions) {
  const shards = Array.from(
    { length: opts.concurrency },
    () =>
      new GroupCommitter<IngestPart, IngestResult>((parts) => persistParts(deps, parts), {
        weight: (part) => part.messages.length,
        maxWeight: opts.maxGroupMessages,
        maxInFlight: 1,
      }),
  )
  return async (job: Job<IngestJobData>): Promise<IngestResult> => {
    const { source, messages } = job.data
    const split = new Map<number, IngestMessage[]>()
    for (const m of messages) {
      const shard = shardOf(rawPersonId(m), shards.length)
      const list = split.get(shard)
      if (list) list.push(m)
      else split.set(shard, [m])
    }
    const settled = await Promise.allSettled(
      [...split].map(([shard, part]) => shards[shard].submit({ source, messages: part, jobId: job.id })),
    )
    const total = empty()
    for (const s of settled) {
      if (s.status === 'rejected') throw s.reason
      add(total, s.value)
      total.rejected += s.value.rejected
    }
    return total
  }
}
