import type { Knex } from 'knex'
import type { WebhookDef } from '../core/config-document/webhooks.ts'
import { SEGMENT_DESTINATION } from './routing.ts'
import { sendToSegment, type SegmentTarget } from './segment-sender.ts'
import { claimDue, recordOutcomes, type Outcome, type OutboxRow } from './store.ts'
import { sendWebhooks } from './webhook-sender.ts'

/**
 * One drain: claims due outbox rows, sends them, records what became of each,
 * and goes on while full claims keep coming. Any number of drains may run at
 * once (claims skip each other's rows).
 */

export interface DrainOptions {
  db: Knex
  /** Segment forwarding, when this process has GOALPOST_FORWARD_WRITE_KEY. */
  segment: Omit<SegmentTarget, 'timeoutMs'> | null
  /** The webhooks in force (from the configuration cache). */
  webhooks: () => Promise<readonly WebhookDef[]>
  /** Deadline of one claim's sends; a claim's lease is three of these. */
  sendTimeoutMs: number
  env?: NodeJS.ProcessEnv
  claimSize?: number
  /** Claims per drain at most (then the next scheduled drain goes on). */
  maxClaims?: number
  /** Give up after this many attempts (then kept as refused, retried by hand). */
  maxAttempts?: number
}

export interface DrainResult {
  sent: number
  retried: number
  refused: number
}

/** Backoff after `attempts` failed attempts: 1 s doubling to one hour, with jitter. */
export function retryDelay(attempts: number): number {
  const base = Math.min(1_000 * 2 ** Math.max(0, attempts - 1), 3_600_000)
  return Math.round(base * (0.8 + Math.random() * 0.4))
}

export const MAX_ATTEMPTS = 25

/** People whose id is a userId (any of their inputs named it so); the rest are anonymous. */
async function knownPeople(db: Knex, people: readonly string[]): Promise<Set<string>> {
  if (people.length === 0) return new Set()
  const { rows } = await db.raw<{ rows: { p: string }[] }>(
    'SELECT p FROM unnest(?::text[]) AS p WHERE EXISTS (SELECT 1 FROM events e WHERE e.person_id = p AND e.user_id = p)',
    [[...people]],
  )
  return new Set(rows.map((r) => r.p))
}

async function sendClaim(opts: DrainOptions, rows: readonly OutboxRow[]): Promise<Map<string, Outcome>> {
  const segmentRows = rows.filter((r) => r.destination === SEGMENT_DESTINATION)
  const hookRows = rows.filter((r) => r.destination !== SEGMENT_DESTINATION)
  const [toSegment, toHooks] = await Promise.all([
    segmentRows.length > 0 && opts.segment
      ? knownPeople(opts.db, [...new Set(segmentRows.map((r) => r.person_id))]).then((known) =>
          sendToSegment({ ...opts.segment!, timeoutMs: opts.sendTimeoutMs }, segmentRows, known),
        )
      : new Map<string, Outcome>(),
    hookRows.length > 0
      ? opts.webhooks().then((hooks) =>
          sendWebhooks(hookRows, hooks, { timeoutMs: opts.sendTimeoutMs, env: opts.env ?? process.env, nowSeconds: () => Math.floor(Date.now() / 1000) }),
        )
      : new Map<string, Outcome>(),
  ])
  return new Map([...toSegment, ...toHooks])
}

export async function drainOutbox(opts: DrainOptions): Promise<DrainResult> {
  const result: DrainResult = { sent: 0, retried: 0, refused: 0 }
  const claimSize = opts.claimSize ?? 500
  const maxAttempts = opts.maxAttempts ?? MAX_ATTEMPTS
  for (let i = 0; i < (opts.maxClaims ?? 50); i++) {
    const rows = await claimDue(opts.db, claimSize, 3 * opts.sendTimeoutMs, opts.segment !== null)
    if (rows.length === 0) break
    const outcomes = await sendClaim(opts, rows)
    const results = rows.map((row) => {
      let outcome = outcomes.get(row.id) ?? { kind: 'retry', error: 'not sent', delayMs: -1 }
      if (outcome.kind === 'retry' && outcome.delayMs < 0)
        outcome =
          row.attempts >= maxAttempts
            ? { kind: 'refused', error: `gave up after ${row.attempts} attempts; last: ${outcome.error}` }
            : { ...outcome, delayMs: retryDelay(row.attempts) }
      result[outcome.kind === 'sent' ? 'sent' : outcome.kind === 'retry' ? 'retried' : 'refused']++
      return { row, outcome }
    })
    await recordOutcomes(opts.db, results)
    if (rows.length < claimSize) break
  }
  return result
}
