import type { Knex } from 'knex'
import { evaluatePerson, initialState, resumePerson, type PersonEvaluation, type PersonEvent, type ReplayReason } from '../core/evaluate-person.ts'
import { decodeSnapshot, type EngineSnapshot } from '../core/engine-state.ts'
import type { EngineConfig } from '../core/model.ts'
import { lockPeople } from '../db/events.ts'
import { addSummary, emptySummary, writeEvaluations, writeIncremental, type WriteSummary } from '../db/evaluation.ts'
import { loadEventsAfter, loadPersonEvents, relevantEventNames } from '../db/person-logs.ts'
import { loadStates, saveEvaluations } from '../db/person-states.ts'
import { deliveryEventTable, type DeliveryEventKind } from '../segment/delivery-events.ts'
import type { OutboundRouting } from '../outbox/routing.ts'

/** The configuration in force, with what evaluation derives from it once. */
export interface EvaluationContext {
  revision: number
  config: EngineConfig
  deliveryTable: ReadonlyMap<string, DeliveryEventKind>
  relevantNames: string[]
  /** Where changes to conversions and journeys are sent (docs/outbound.md); null: nowhere, nothing recorded. */
  outbound?: OutboundRouting | null
}

export function evaluationContext(revision: number, config: EngineConfig, outbound: OutboundRouting | null = null): EvaluationContext {
  const deliveryTable = deliveryEventTable(config.deliveryEvents)
  return { revision, config, deliveryTable, relevantNames: relevantEventNames(config, deliveryTable), outbound }
}

/** How many people each kind of evaluation handled (replays by reason). */
export interface EvaluationPaths {
  incremental: number
  replay: number
  reasons: Partial<Record<ReplayReason | 'no-state' | 'requested', number>>
}

export interface Evaluated {
  summary: WriteSummary
  results: Map<string, PersonEvaluation>
  paths: EvaluationPaths
  /** The configuration revision in force when the evaluation was written (the caller may have used an older one). */
  revisionInForce: number
}

/** The inputs a transaction just stored, which the evaluation in the same transaction folds in. */
export interface StoredInputs {
  /** Per person, the stored inputs the configuration can use. */
  events: ReadonlyMap<string, readonly PersonEvent[]>
  /** Deliveries that had no row before this transaction. */
  newDeliveries: ReadonlySet<string>
  /** People whose log changed out of rule order (an identity merge, R25): replayed. */
  replay: ReadonlySet<string>
  /** People this transaction created: their whole log is in `events`, so they start from the initial state. */
  newPeople: ReadonlySet<string>
}

export interface EvaluateOptions {
  /** Replay every person's whole log, whatever state is stored (inputs stored out of rule order: import, merges). */
  replay?: boolean
  /** The inputs this transaction stored (ingestion): no need to read them back. */
  stored?: StoredInputs
}

export interface EvaluationScope {
  campaignKeys?: readonly string[]
  segmentKeys?: readonly string[]
}

/** People whose whole logs one replay step holds in memory at once. */
const REPLAY_SLICE = 25

const usable = (stored: { configRevision: number; state: unknown } | undefined, revision: number): EngineSnapshot | null =>
  stored && stored.configRevision === revision ? decodeSnapshot(stored.state) : null

/**
 * Evaluates people and writes the outcome (R3). A person with a state stored
 * under this configuration revision is resumed from it with only the inputs
 * that came after it; anyone else, or anyone whose new inputs sort before the
 * state (R3 late inputs, R5 revocations of a credited delivery, R25 merges),
 * has their whole log replayed. Both give the same rows (docs/conversions.md,
 * "Stored state"). The caller's transaction must hold the people's advisory
 * locks (lockPeople), so no two evaluations of one person interleave.
 */
export async function evaluateLocked(
  trx: Knex.Transaction,
  personIds: readonly string[],
  ctx: EvaluationContext,
  now: number,
  scope: EvaluationScope = {},
  opts: EvaluateOptions = {},
): Promise<Evaluated> {
  const paths: EvaluationPaths = { incremental: 0, replay: 0, reasons: {} }
  const replay = (id: string, reason: keyof EvaluationPaths['reasons']) => {
    replayIds.push(id)
    paths.reasons[reason] = (paths.reasons[reason] ?? 0) + 1
  }
  const replayIds: string[] = []
  const incremental = new Map<string, PersonEvaluation>()
  // A recompute of one campaign writes only its rows: a replay reads them all back.
  if (opts.replay || scope.campaignKeys || scope.segmentKeys) for (const id of personIds) replay(id, 'requested')
  else {
    const states = await loadStates(trx, personIds)
    const resumable = new Map<string, EngineSnapshot>()
    for (const id of personIds) {
      const saved = opts.stored?.replay.has(id)
        ? null
        : opts.stored?.newPeople.has(id)
          ? initialState(ctx.config)
          : usable(states.get(id), ctx.revision)
      if (saved) resumable.set(id, saved)
      else replay(id, opts.stored?.replay.has(id) ? 'requested' : 'no-state')
    }
    // Ingestion hands over what it stored; other callers (the scheduled wake-up,
    // eligibility) read what came after each state, normally nothing.
    const inputs =
      opts.stored?.events ??
      (resumable.size > 0
        ? await loadEventsAfter(trx, new Map([...resumable].map(([id, s]) => [id, { at: s.at, seq: s.seq }])), ctx.relevantNames, ctx.deliveryTable)
        : new Map<string, PersonEvent[]>())
    const newDeliveries = opts.stored?.newDeliveries
    const storedBefore = (deliveryId: string) => !newDeliveries?.has(deliveryId)
    for (const [id, saved] of resumable) {
      const r = resumePerson(id, saved, inputs.get(id) ?? [], ctx.config, now, storedBefore)
      if ('replay' in r) replay(id, r.replay)
      else incremental.set(id, r)
    }
  }
  paths.incremental = incremental.size
  paths.replay = replayIds.length

  const summary = emptySummary()
  const replayed = new Map<string, PersonEvaluation>()
  // A few people's whole logs at a time: replays are rare but can come all at
  // once (after a configuration save) for people with thousands of inputs.
  for (let i = 0; i < replayIds.length; i += REPLAY_SLICE) {
    const slice = new Map<string, PersonEvaluation>()
    const logs = await loadPersonEvents(trx, replayIds.slice(i, i + REPLAY_SLICE), ctx.relevantNames, ctx.deliveryTable)
    for (const [personId, events] of logs) slice.set(personId, evaluatePerson(personId, events, ctx.config, now))
    logs.clear()
    addSummary(
      summary,
      await writeEvaluations(trx, slice, {
        campaignKeys: scope.campaignKeys ?? ctx.config.campaigns.map((c) => c.key),
        segmentKeys: scope.segmentKeys ?? ctx.config.segments.map((s) => s.key),
      }, ctx.outbound ?? null),
    )
    for (const [id, r] of slice) replayed.set(id, r)
  }
  if (incremental.size > 0) addSummary(summary, await writeIncremental(trx, incremental, ctx.outbound ?? null))
  const results = new Map([...incremental, ...replayed])
  const revisionInForce = await saveEvaluations(
    trx,
    [...results].map(([personId, r]) => ({ personId, nextWakeAt: r.nextWakeAt, state: r.snapshot })),
    ctx.revision,
    now,
  )
  return { summary, results, paths, revisionInForce }
}

/** Evaluates people in a transaction of its own (scheduled refresh, eligibility, recompute, import). */
export async function evaluatePeople(
  db: Knex,
  personIds: readonly string[],
  ctx: EvaluationContext,
  now: number,
  opts: EvaluateOptions = {},
): Promise<Evaluated> {
  if (personIds.length === 0) return { summary: emptySummary(), results: new Map(), paths: { incremental: 0, replay: 0, reasons: {} }, revisionInForce: ctx.revision }
  return db.transaction(async (trx) => {
    await lockPeople(trx, personIds)
    return evaluateLocked(trx, personIds, ctx, now, {}, opts)
  })
}

/** No segments, no campaigns, the built-in delivery events: ingestion only. */
export const emptyContext = (): EvaluationContext => evaluationContext(0, { segments: [], campaigns: [], deliveryEvents: [] })
