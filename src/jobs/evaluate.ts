import type { Knex } from 'knex'
import { evaluatePerson, type PersonEvaluation, type PersonEvent } from '../core/evaluate-person.ts'
import type { EngineConfig } from '../core/model.ts'
import { lockPeople } from '../db/events.ts'
import { emptySummary, loadPersonEvents, relevantEventNames, writeEvaluations, type WriteSummary } from '../db/evaluation.ts'
import { deliveryEventTable, type DeliveryEventKind } from '../plugin/delivery-events.ts'

/** The configuration in force, with what evaluation derives from it once. */
export interface EvaluationContext {
  revision: number
  config: EngineConfig
  deliveryTable: ReadonlyMap<string, DeliveryEventKind>
  relevantNames: string[]
}

export function evaluationContext(revision: number, config: EngineConfig): EvaluationContext {
  const deliveryTable = deliveryEventTable(config.deliveryEvents)
  return { revision, config, deliveryTable, relevantNames: relevantEventNames(config, deliveryTable) }
}

export interface Evaluated {
  summary: WriteSummary
  results: Map<string, PersonEvaluation>
  /** The logs the evaluation read, per person. */
  logs: Map<string, PersonEvent[]>
}

/**
 * Evaluates people from their persisted logs and writes the outcome (R3).
 * The caller's transaction must hold the people's advisory locks (lockPeople),
 * so no two evaluations of one person interleave.
 */
export async function evaluateLocked(
  trx: Knex.Transaction,
  personIds: readonly string[],
  ctx: EvaluationContext,
  now: number,
  scope: { campaignKeys?: readonly string[]; segmentKeys?: readonly string[] } = {},
  _opts: EvaluateOptions = {},
): Promise<Evaluated> {
  const logs = await loadPersonEvents(trx, personIds, ctx.relevantNames, ctx.deliveryTable)
  const results = new Map<string, PersonEvaluation>()
  for (const [personId, events] of logs) results.set(personId, evaluatePerson(personId, events, ctx.config, now))
  const summary = await writeEvaluations(trx, results, {
    campaignKeys: scope.campaignKeys ?? ctx.config.campaigns.map((c) => c.key),
    segmentKeys: scope.segmentKeys ?? ctx.config.segments.map((s) => s.key),
    configRevision: ctx.revision,
    now,
  })
  return { summary, results, logs }
}

export interface EvaluateOptions {
  /** Replay every person's whole log, whatever state is stored (inputs stored out of rule order: import, merges). */
  replay?: boolean
}

/** Evaluates people in a transaction of its own (scheduled refresh, eligibility, recompute, import). */
export async function evaluatePeople(
  db: Knex,
  personIds: readonly string[],
  ctx: EvaluationContext,
  now: number,
  opts: EvaluateOptions = {},
): Promise<Evaluated> {
  if (personIds.length === 0) return { summary: emptySummary(), results: new Map(), logs: new Map() } as Evaluated
  return db.transaction(async (trx) => {
    await lockPeople(trx, personIds)
    return evaluateLocked(trx, personIds, ctx, now, {}, opts)
  })
}

/** No segments, no campaigns, the built-in delivery events: ingestion only. */
export const emptyContext = (): EvaluationContext => evaluationContext(0, { segments: [], campaigns: [], deliveryEvents: [] })
