import type { Attributes } from './attributes.ts'
import type { Channel } from './lifecycle.ts'

/**
 * The rule state a person's evaluation ends in, as stored between
 * evaluations (person_evaluations.state), so the next input is folded onto it
 * instead of replaying the whole log (docs/conversions.md, "Stored state").
 *
 * Plain JSON with short keys: compact, readable with SQL's jsonb operators,
 * and independent of the Node version. A change to what the fields mean must
 * raise STATE_VERSION: a state of another version is never used (the log is
 * replayed instead), and neither is one written under another configuration
 * revision (the caller checks that; the state does not name the revision).
 *
 * Only what can still change an outcome is kept (see `prune` in
 * evaluate-person.ts): a person's state stays the same size however long
 * their history grows.
 */
export const STATE_VERSION = 2

/** A lifecycle mark: [processing time, seq] (R2, R7). */
export type MarkSnapshot = [number, number]

export interface DeliverySnapshot {
  id: string
  ch: Channel
  s?: MarkSnapshot
  dl?: MarkSnapshot
  o?: MarkSnapshot
  c?: MarkSnapshot
  /** R5: revoked. */
  rv?: 1
  /** R20: after_exit. */
  ax?: 1
  /** converted_at */
  cv?: number
  /** The sender's journey_id (first named). */
  ref?: string
  /** The processing time of the last input that touched it. */
  lt: number
}

/** A journey's entry cause (R17), in one letter: event_trigger, segment_trigger, delivery. */
export type CauseCode = 'e' | 's' | 'd'

/** A journey; absent fields are null or empty. Its id is not stored: it is derived from the entry (journeyIdFor). */
export interface JourneySnapshot {
  /** campaign key */
  c: string
  /** entered_at */
  at: number
  cause: CauseCode
  /** entry message id (absent when time alone caused the entry) */
  m?: string
  /** goal version at entry (R14) */
  gv?: number
  x?: number
  xr?: 'goal' | 'unmatch'
  done?: number
  cv?: number
  /** The trigger event's properties the goals refer to ({trigger: …}, R9); absent without a trigger event. */
  trig?: Record<string, unknown>
  /** R15: of the goal segments, those the person was in at entry. */
  mae?: string[]
  /** The journey_ids senders named on its deliveries (R22 `Journey Completed`). */
  refs?: string[]
  /** The campaign's latest journey (R17). */
  last?: 1
  /** Its deliveries that can still matter. */
  d?: DeliverySnapshot[]
}

export interface EngineSnapshot {
  v: typeof STATE_VERSION
  /** Watermark: the last input folded in, in rule order (R2): processing time and seq. */
  at: number | null
  seq: number | null
  /** The last instant processed (an input or a time-caused instant, R22/R23). */
  t: number | null
  attrs: Attributes
  /** Segments the person is in. */
  in: string[]
  /** Per counted event condition, in configuration order: the times still inside its window, or a count when it has none. */
  n: Array<number[] | number>
  /** Open memberships: [segment, joined_at, join message id]. */
  open: Array<[string, number, string | null]>
  j: JourneySnapshot[]
}

/** A stored state, if it is one this goalpost can use; otherwise null (replay). */
export function decodeSnapshot(value: unknown): EngineSnapshot | null {
  if (typeof value !== 'object' || value === null) return null
  const s = value as Partial<EngineSnapshot>
  if (s.v !== STATE_VERSION || !Array.isArray(s.j) || !Array.isArray(s.n) || !Array.isArray(s.open) || !Array.isArray(s.in)) return null
  return s as EngineSnapshot
}
