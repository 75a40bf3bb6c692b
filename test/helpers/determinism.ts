import { validateConfigDocument } from '../../src/core/config-document/index.ts'
import { applyConfig, loadEngineConfig } from '../../src/db/config.ts'
import type { Knex } from '../../src/db/knex.ts'
import { evaluationContext, type EvaluationContext } from '../../src/jobs/evaluate.ts'
import { persistBatch, type PersistOutcome } from '../../src/jobs/persist-batch.ts'
import { normaliseMessage, type IngestMessage } from '../../src/segment/normalise.ts'

/**
 * Shared by the R3 tests (determinism, incremental evaluation): scenario
 * configurations applied to a test database, messages persisted as a worker
 * does, and a snapshot of every table the rules write.
 */

/** Every scenario instant (and so every time-caused change) is long before this. */
export const NOW = Date.parse('2026-11-01T00:00:00Z')
const APPLIED_AT = new Date('2026-01-15T00:00:00Z')

const TABLES = [
  'conversions', 'journeys', 'segment_memberships', 'person_evaluations', 'deliveries', 'identity_links', 'events',
  'people', 'rejected_messages', 'campaign_goal_versions', 'config_delivery_events', 'campaigns', 'segments', 'config_revisions',
]

export const SNAPSHOT: Record<string, string> = {
  journeys: `SELECT journey_id, campaign_key, person_id, entered_at, entry_cause, entry_message_id, goal_version,
                    exited_at, exit_reason, completed_at, converted_at FROM journeys ORDER BY journey_id`,
  conversions: `SELECT journey_id, campaign_key, person_id, delivery_id, goal_version, goal_type, event_message_id,
                       converted_at, anchor_at, attributed_via, channel, value FROM conversions ORDER BY journey_id`,
  segment_memberships: `SELECT * FROM segment_memberships ORDER BY person_id, segment_key, joined_at`,
  deliveries: `SELECT delivery_id, person_id, campaign_ref, campaign_key, journey_id, channel, action_id, sent_at, delivered_at,
                      opened_at, clicked_at, failed_at, after_exit, converted_at FROM deliveries ORDER BY delivery_id`,
  people: `SELECT person_id, attributes FROM people ORDER BY person_id`,
  identity_links: `SELECT anonymous_id, person_id FROM identity_links ORDER BY anonymous_id`,
  events: `SELECT message_id, person_id, received_at FROM events ORDER BY message_id`,
  next_wake: `SELECT person_id, next_wake_at FROM person_evaluations ORDER BY person_id`,
}

export async function reset(db: Knex): Promise<void> {
  await db.raw(`TRUNCATE ${TABLES.join(', ')} RESTART IDENTITY CASCADE`)
}

/** Applies the scenario's configuration documents in order; the context in force after them. */
export async function configure(db: Knex, docs: object[]): Promise<EvaluationContext> {
  for (const raw of docs) {
    const validated = validateConfigDocument(raw)
    if (!validated.ok) throw new Error(`scenario config invalid:\n${validated.errors.join('\n')}`)
    await applyConfig(db, validated.document, { now: APPLIED_AT, source: 'test', raw })
  }
  const { revision, config } = await loadEngineConfig(db)
  return evaluationContext(revision, config)
}

/** What a worker does, retrying the transient errors BullMQ would retry (deadlock, serialisation). */
export async function ingest(db: Knex, ctx: EvaluationContext, messages: IngestMessage[], now = NOW): Promise<PersistOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await persistBatch(db, 'webhook', messages, ctx, () => now)
    } catch (err) {
      const code = (err as { code?: string }).code
      if ((code !== '40P01' && code !== '40001') || attempt >= 10) throw err
    }
  }
}

export function normalised(message: Record<string, unknown>): IngestMessage {
  const result = normaliseMessage(message, { receivedAt: new Date(NOW).toISOString(), honourReceivedAt: true })
  if (!result.ok) throw new Error(`scenario message invalid: ${result.error.message}`)
  return result.message
}

export async function snapshot(db: Knex): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {}
  for (const [name, sql] of Object.entries(SNAPSHOT)) out[name] = (await db.raw(sql)).rows
  return out
}
