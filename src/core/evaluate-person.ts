import type { EngineSnapshot } from './engine-state.ts'
import { Engine } from './engine.ts'
import type { EngineConfig } from './model.ts'
import { ruleOrder, type PersonEvaluation, type PersonEvent, type ReplayReason } from './records.ts'

export * from './records.ts'

/**
 * One person's evaluation (R3): folds their log in rule order (R2), with the
 * instants at which time alone changes something (R22, R23), into segment
 * memberships, journeys, delivery attribution and conversions. A pure
 * function of the log, the configuration and `now`, so streaming evaluation
 * and a full recompute agree whatever order or concurrency the inputs
 * arrived in.
 *
 * `evaluatePerson` replays a whole log and returns every row the rules give.
 * `resumePerson` starts from the state a previous evaluation ended in
 * (engine-state.ts) and folds in only inputs that come after it in rule
 * order, returning only the rows that changed; it gives exactly what a
 * replay would (test/integration/incremental.test.ts), or says why it cannot.
 */

/** Replays a person's whole log (R3). */
export function evaluatePerson(personId: string, input: readonly PersonEvent[], config: EngineConfig, now: number): PersonEvaluation {
  const engine = new Engine(personId, config, 'replay', new Set(input.filter((e) => e.delivery?.step === 'revoked').map((e) => e.delivery!.deliveryId)))
  // R2, R3: in rule order whatever order the log was read in (a late webhook retry has a higher seq but an earlier received_at).
  return engine.run([...input].sort(ruleOrder), now)
}

/** The state of a person with no input yet: resuming from it with a whole log is a replay of it. */
export function initialState(config: EngineConfig): EngineSnapshot {
  return new Engine('', config, 'incremental', new Set()).run([], -Infinity).snapshot
}

/**
 * Folds `input` (the person's inputs not yet folded into `saved`) onto the
 * stored state. Gives what evaluatePerson over the whole log would, or the
 * reason it cannot: an input that sorts before the state's watermark or
 * before an instant already processed, the revocation of a delivery already
 * credited (R5 acts backwards), or an input about a delivery the state has
 * dropped (`storedBefore`: whether a delivery had inputs before these).
 */
export function resumePerson(
  personId: string,
  saved: EngineSnapshot,
  input: readonly PersonEvent[],
  config: EngineConfig,
  now: number,
  storedBefore: (deliveryId: string) => boolean,
): PersonEvaluation | { replay: ReplayReason } {
  const events = [...input].sort(ruleOrder)
  const first = events[0]
  if (first && saved.at !== null && (first.receivedAt < saved.at || (first.receivedAt === saved.at && first.seq <= saved.seq!)))
    return { replay: 'late-input' }
  if (first && saved.t !== null && first.receivedAt < saved.t) return { replay: 'late-input' }
  const revoked = new Set(events.filter((e) => e.delivery?.step === 'revoked').map((e) => e.delivery!.deliveryId))
  const engine = new Engine(personId, config, 'incremental', revoked)
  if (!engine.restore(saved)) return { replay: 'state-mismatch' }
  for (const e of events) {
    if (!e.delivery || e.delivery.step === 'recorded' || !engine.resolve(e.delivery.campaignRef)) continue
    const known = engine.deliveries.get(e.delivery.deliveryId)
    if (known && revoked.has(known.deliveryId) && known.convertedAt !== null) return { replay: 'revoked-credited-delivery' }
    if (!known && storedBefore(e.delivery.deliveryId)) return { replay: 'forgotten-delivery' }
  }
  return engine.run(events, now)
}

