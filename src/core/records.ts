import { createHash } from 'node:crypto'
import type { EngineSnapshot } from './engine-state.ts'
import type { Channel, DeliveryFact } from './lifecycle.ts'
import type { CampaignDef } from './model.ts'
import type { TimelineEvent } from './person-state.ts'

/** What an evaluation reads (a person's inputs) and what it gives (the rows the rules derive). */

export interface PersonEvent extends TimelineEvent {
  delivery: DeliveryFact | null
}

export interface MembershipRecord {
  segmentKey: string
  joinedAt: number
  leftAt: number | null
  /** The input that caused the join / leave; null when time alone did (R23). */
  joinMessageId: string | null
  leaveMessageId: string | null
}

export type EntryCause = 'event_trigger' | 'segment_trigger' | 'delivery'

export interface JourneyRecord {
  journeyId: string
  campaignKey: string
  enteredAt: number
  entryCause: EntryCause
  entryMessageId: string | null
  /** R14: the goal version in force at entry; null when the campaign had no goal then. */
  goalVersion: number | null
  exitedAt: number | null
  exitReason: 'goal' | 'unmatch' | null
  completedAt: number | null
  convertedAt: number | null
}

export interface DeliveryRecord {
  deliveryId: string
  campaignKey: string
  journeyId: string
  afterExit: boolean
  convertedAt: number | null
}

export interface ConversionRecord {
  journeyId: string
  campaignKey: string
  deliveryId: string
  goalVersion: number
  goalType: 'event' | 'segment'
  eventMessageId: string | null
  convertedAt: number
  anchorAt: number
  attributedVia: 'delivered' | 'opened' | 'clicked'
  channel: Channel
  value: number | null
}

/** A judged candidate, with why it did or did not convert (for explanations and tests). */
export interface CandidateDecision {
  at: number
  messageId: string | null
  journeyId: string
  converts: boolean
  reason: string
}

export interface PersonEvaluation {
  /**
   * `replay`: the rows are every row the rules give for the person (a whole
   * log was replayed). `incremental`: only the rows created or changed by the
   * inputs and instants folded in; every other row is as stored.
   */
  mode: 'replay' | 'incremental'
  memberships: MembershipRecord[]
  journeys: JourneyRecord[]
  deliveries: DeliveryRecord[]
  conversions: ConversionRecord[]
  decisions: CandidateDecision[]
  /** Of the rows above, how many are new (the rest changed); for incremental summaries. */
  created: { memberships: number; journeys: number; deliveries: number }
  /** The next instant after `now` at which time alone changes something; when to look again. */
  nextWakeAt: number | null
  /** A campaign's latest journey (R17, R21), whatever the mode. */
  latestJourney(campaignKey: string): JourneyRecord | undefined
  /** Whether the person matches a campaign's audience filters at the end of the evaluation (R21). */
  matchesAudience(campaign: CampaignDef): boolean
  /** The state to store, from which the next evaluation can resume. */
  snapshot: EngineSnapshot
}

/** Why a stored state cannot be resumed: the log must be replayed. */
export type ReplayReason = 'late-input' | 'revoked-credited-delivery' | 'forgotten-delivery' | 'state-mismatch'

/** R2: processing time, ties broken by persist order. */
export const ruleOrder = (a: TimelineEvent, b: TimelineEvent) => a.receivedAt - b.receivedAt || a.seq - b.seq

export const JOURNEY_COMPLETED = 'Journey Completed'

/** Deterministic journey ids: the same entry gives the same id in every recompute. */
export function journeyIdFor(campaignKey: string, personId: string, entryMessageId: string | null, enteredAt: number): string {
  const basis = entryMessageId === null ? `${campaignKey}\u0000${personId}\u0000${enteredAt}` : `${campaignKey}\u0000${entryMessageId}`
  return `j_${createHash('sha256').update(basis).digest('base64url').slice(0, 22)}`
}

/** Which configured campaign a sender's `campaign_id` names: its key or one of its external ids (R4). */
const resolvers = new WeakMap<readonly CampaignDef[], (ref: string | null) => CampaignDef | undefined>()

export function campaignResolver(campaigns: readonly CampaignDef[]): (ref: string | null) => CampaignDef | undefined {
  const known = resolvers.get(campaigns)
  if (known) return known
  const byRef = new Map<string, CampaignDef>()
  for (const c of campaigns) for (const id of c.externalIds) byRef.set(id, c)
  for (const c of campaigns) byRef.set(c.key, c) // a key wins over another campaign's external id
  const resolve = (ref: string | null) => (ref === null ? undefined : byRef.get(ref))
  resolvers.set(campaigns, resolve)
  return resolve
}
