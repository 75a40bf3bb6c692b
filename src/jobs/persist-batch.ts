import type { Knex } from 'knex'
import { deliveryFact } from '../segment/delivery-events.ts'
import type { IngestMessage } from '../segment/normalise.ts'
import { insertEvents, insertEventsBulk, lockNamedPeople, type PersistedEvent, type Source } from '../db/events.ts'
import { applyTraits } from '../db/people.ts'
import { mergeIdentities, type Merge } from '../db/identities.ts'
import { upsertDeliveries, type DeliveryObservation } from '../db/deliveries.ts'
import type { WriteSummary } from '../db/evaluation.ts'
import { evaluateLocked, type EvaluationContext, type EvaluationPaths, type StoredInputs } from './evaluate.ts'
import { configRevisionInForce } from '../db/person-states.ts'
import { personEvent } from '../db/person-logs.ts'
import type { PersonEvent } from '../core/evaluate-person.ts'

/** The configuration was saved while a transaction ran under the previous one: run it again under the new one. */
export class StaleConfigurationError extends Error {
  constructor(
    readonly used: number,
    readonly inForce: number,
  ) {
    super(`configuration revision ${inForce} was saved while revision ${used} was in use; store the batch again under the new one`)
    this.name = 'StaleConfigurationError'
  }
}

/** One queued batch of a group: a job's messages and where they came from. */
export interface BatchPart {
  source: Source
  messages: readonly IngestMessage[]
}

/** What one part of a group did, counted on the part whose message caused it. */
export interface PartOutcome {
  inserted: number
  duplicates: number
  merges: number
  deliveries: number
  evaluated: number
}

export interface GroupOutcome extends PersistOutcome {
  parts: PartOutcome[]
}

export interface PersistOutcome {
  /** Messages new to the log. */
  inserted: number
  /** Messages whose messageId was already in the log (ignored, idempotent). */
  duplicates: number
  /** Every person whose log changed: what the evaluation must look at. */
  people: string[]
  merges: Merge[]
  deliveries: number
  /** People evaluated after the batch (those with an input the configuration can use, R3). */
  evaluated: number
  evaluation: WriteSummary | null
  /** How the evaluation went: incremental from stored states, or replays (by reason). */
  paths: EvaluationPaths | null
}

/**
 * Persists one batch in one transaction: the log, people and their traits,
 * identity merges (R25) and delivery lifecycles (R4); then, still holding the
 * people's locks, evaluates the people whose new inputs the configuration can
 * use, so conversions are written in the same transaction as their cause.
 * Only messages new to the log have effects, so running the same batch again,
 * or concurrently, changes nothing (idempotent under BullMQ retries and
 * stalled-job re-runs), and every evaluation is a function of the log (R3).
 */
export async function persistBatch(
  db: Knex,
  source: Source,
  messages: readonly IngestMessage[],
  ctx: EvaluationContext,
  now: () => number = Date.now,
): Promise<PersistOutcome> {
  const { parts: _parts, ...outcome } = await persistGroup(db, [{ source, messages }], ctx, now)
  return outcome
}

/** What storeGroup wrote, for the evaluation that follows it. */
export interface StoredGroup {
  /** The messages new to the log, in persist order, with their seq and person. */
  events: PersistedEvent[]
  /** Every person whose log changed. */
  people: string[]
  merges: Merge[]
  deliveries: number
  /** The people the configuration needs evaluated, each with the part that first named them. */
  toEvaluate: Map<string, number>
  /** What the evaluation in the same transaction folds in (incremental evaluation). */
  inputs: StoredInputs
  parts: PartOutcome[]
}

export interface StoreOptions {
  /**
   * A large batch whose people are evaluated later from their whole log
   * (import): the log is written by COPY, and no evaluation inputs are built
   * (`inputs` comes back empty).
   */
  bulk?: boolean
  /** With bulk: the messages' stagedEvent lines, rendered ahead by the caller. */
  stagedEvents?: readonly string[]
}

/**
 * Stores a group of batches inside the caller's transaction, without
 * evaluating anyone: the log, people and their traits, identity merges (R25)
 * and delivery lifecycles (R4), under the people's locks. Returns who needs
 * evaluating. Only messages new to the log have effects (idempotent).
 */
export async function storeGroup(
  trx: Knex.Transaction,
  parts: readonly BatchPart[],
  ctx: EvaluationContext,
  opts: StoreOptions = {},
): Promise<StoredGroup> {
  const messages = parts.flatMap((p) => p.messages)
  const sources = parts.flatMap((p) => p.messages.map(() => p.source))
  // partOf[i]: the part message i came from.
  const partOf = parts.flatMap((p, n) => p.messages.map(() => n))
  const counts: PartOutcome[] = parts.map((p) => ({ inserted: 0, duplicates: p.messages.length, merges: 0, deliveries: 0, evaluated: 0 }))
  const deliveryTable = ctx.deliveryTable
  const relevant = new Set(ctx.relevantNames)
  const evaluates = ctx.config.campaigns.length > 0 || ctx.config.segments.length > 0
  await lockNamedPeople(
    trx,
    messages.flatMap((m) => [m.userId, m.anonymousId, m.meta?.previousId].filter((id): id is string => !!id)),
  )
  const events = opts.bulk ? await insertEventsBulk(trx, sources, messages, opts.stagedEvents) : await insertEvents(trx, sources, messages)
  for (const e of events) {
    counts[partOf[e.index]].inserted++
    counts[partOf[e.index]].duplicates--
  }
  const people = new Set(events.map((e) => e.personId))

  const observations: DeliveryObservation[] = []
  for (const e of events) {
    if (e.message.type !== 'track' || e.message.name === null) continue
    const fact = deliveryFact(deliveryTable, e.message.name, e.message.properties)
    if (fact && fact.step !== 'recorded') {
      observations.push({ fact, personId: e.personId, receivedAt: e.message.receivedAt, seq: e.seq })
      counts[partOf[e.index]].deliveries++
    }
  }
  const newDeliveries = await upsertDeliveries(trx, observations, { bulk: opts.bulk })

  await applyTraits(
    trx,
    events
      .filter((e) => e.message.type === 'identify')
      .map((e) => ({ personId: e.personId, traits: e.message.properties, receivedAt: e.message.receivedAt, seq: e.seq })),
    { bulk: opts.bulk },
  )

  const linkPart = new Map<string, number>()
  const merges = await mergeIdentities(
    trx,
    events.flatMap((e) => {
      const m = e.message
      const fromId = m.type === 'alias' ? m.meta?.previousId : m.type === 'identify' ? m.anonymousId : null
      if (!fromId || !m.userId) return []
      if (!linkPart.has(fromId)) linkPart.set(fromId, partOf[e.index])
      return [{ fromId, toId: m.userId, receivedAt: m.receivedAt, seq: e.seq, messageId: m.messageId }]
    }),
  )
  for (const m of merges) counts[linkPart.get(m.from) ?? 0].merges++
  // The part that first named a person to evaluate counts the evaluation.
  const evaluatedBy = new Map<string, number>()
  if (evaluates) {
    for (const e of events)
      if ((e.message.type === 'identify' || (e.message.name !== null && relevant.has(e.message.name))) && !evaluatedBy.has(e.personId))
        evaluatedBy.set(e.personId, partOf[e.index])
    // R25: the merged person is judged on the whole merged log, and the
    // merged-away id's derived rows move or go.
    for (const { from, into } of merges) {
      const part = linkPart.get(from) ?? 0
      if (!evaluatedBy.has(from)) evaluatedBy.set(from, part)
      if (!evaluatedBy.has(into)) evaluatedBy.set(into, part)
    }
  }
  for (const { from, into } of merges) {
    people.delete(from)
    people.add(into)
  }
  // Ids resolved before a merge in this batch now belong to the merged person.
  const mergedInto = new Map(merges.map((m) => [m.from, m.into]))
  for (const [id, part] of [...evaluatedBy])
    if (mergedInto.has(id) && !evaluatedBy.has(mergedInto.get(id)!)) evaluatedBy.set(mergedInto.get(id)!, part)
  for (const part of evaluatedBy.values()) counts[part].evaluated++
  const replay = new Set(merges.flatMap((m) => [m.from, m.into]))
  const newPeople = new Set(opts.bulk ? [] : events.filter((e) => e.newPerson && !replay.has(e.personId)).map((e) => e.personId))
  const inputs: StoredInputs = { events: new Map(), newDeliveries, replay, newPeople }
  // An import evaluates from the log later: it needs no inputs.
  for (const e of opts.bulk ? [] : events) {
    const m = e.message
    if (!evaluatedBy.has(e.personId) || !(m.type === 'identify' || (m.name !== null && relevant.has(m.name)))) continue
    const input = personEvent(deliveryTable, { messageId: m.messageId, seq: e.seq, receivedAt: Date.parse(m.receivedAt), type: m.type, name: m.name, properties: m.properties })
    const list = inputs.events.get(e.personId) as PersonEvent[] | undefined
    if (list) list.push(input)
    else (inputs.events as Map<string, PersonEvent[]>).set(e.personId, [input])
  }
  return { events, people: [...people], merges, deliveries: observations.length, toEvaluate: evaluatedBy, inputs, parts: counts }
}

/**
 * persistBatch for several queued batches at once (group commit): one
 * transaction, so the per-transaction and per-statement costs are paid once
 * for the group. The messages keep the parts' order (R2: seq is persist order).
 */
export async function persistGroup(
  db: Knex,
  parts: readonly BatchPart[],
  ctx: EvaluationContext,
  now: () => number = Date.now,
): Promise<GroupOutcome> {
  const messages = parts.flatMap((p) => p.messages)
  return db.transaction(async (trx) => {
    const stored = await storeGroup(trx, parts, ctx)
    const toEvaluate = [...stored.toEvaluate.keys()]
    const evaluated = toEvaluate.length > 0 ? await evaluateLocked(trx, toEvaluate, ctx, now(), {}, { stored: stored.inputs }) : null
    // R3: inputs stored under a configuration a save has replaced would have
    // been judged (or skipped as irrelevant) by the old one, and a stored
    // state would never fold them in: roll back and store them again under
    // the new one. A save committed after this check bumps the revision, and
    // the wake-up's catch-up replays everyone evaluated under an older one.
    const inForce = evaluated?.revisionInForce ?? (await configRevisionInForce(trx))
    if (inForce !== ctx.revision) throw new StaleConfigurationError(ctx.revision, inForce)
    const evaluation = evaluated?.summary ?? null
    return {
      paths: evaluated?.paths ?? null,
      inserted: stored.events.length,
      duplicates: messages.length - stored.events.length,
      people: stored.people,
      merges: stored.merges,
      deliveries: stored.deliveries,
      evaluated: toEvaluate.length,
      evaluation,
      parts: stored.parts,
    }
  })
}
