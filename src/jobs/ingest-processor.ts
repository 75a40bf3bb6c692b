import type { Job } from 'bullmq'
import type { Knex } from 'knex'
import type { Logger } from '../logger.ts'
import { evaluatePeople, type EvaluationContext } from './evaluate.ts'
import { recordRejected } from '../db/rejected.ts'
import type { IngestJobData } from './queues.ts'
import { persistBatch, type PersistOutcome } from './persist-batch.ts'

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
 * R3: a batch evaluated with a configuration that a save replaced meanwhile
 * (the cache lags a save by up to a second) is evaluated again under the new
 * one. Checked after the commit, so a save committed later is the scheduled
 * refresh's to catch (it re-evaluates people evaluated under older revisions).
 */
async function reevaluateIfStale(deps: IngestDeps, ctx: EvaluationContext, people: readonly string[]): Promise<void> {
  if (people.length === 0) return
  const [{ revision }] = (await deps.db.raw('SELECT coalesce(max(revision), 0)::int AS revision FROM config_revisions')).rows as { revision: number }[]
  if (revision <= ctx.revision) return
  await evaluatePeople(deps.db, people, await deps.context({ fresh: true }), Date.now())
}

const add = (total: IngestResult, o: PersistOutcome) => {
  total.inserted += o.inserted
  total.duplicates += o.duplicates
  total.merges += o.merges.length
  total.deliveries += o.deliveries
  total.evaluated += o.evaluated
  return total
}

const empty = (): IngestResult => ({ inserted: 0, duplicates: 0, rejected: 0, merges: 0, deliveries: 0, evaluated: 0 })

/** The BullMQ processor for ingest jobs. */
export function createIngestProcessor(deps: IngestDeps) {
  return async (job: Job<IngestJobData>): Promise<IngestResult> => {
    const { source, messages } = job.data
    const ctx = await deps.context()
    try {
      const outcome = await persistBatch(deps.db, source, messages, ctx)
      await reevaluateIfStale(deps, ctx, outcome.people)
      return add(empty(), outcome)
    } catch (err) {
      if (!isPermanentDbError(err)) throw err
      // Not the error itself: its message holds the whole statement.
      const { code } = err as { code: string }
      deps.log.warn({ code, reason: postgresMessage(err as Error), jobId: job.id }, 'batch holds a message Postgres refuses; storing its messages one by one')
    }
    // One message at a time, so one bad message costs only itself.
    const total = empty()
    for (const message of messages) {
      try {
        const outcome = await persistBatch(deps.db, source, [message], ctx)
        await reevaluateIfStale(deps, ctx, outcome.people)
        add(total, outcome)
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
    return total
  }
}
