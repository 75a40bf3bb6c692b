import { createHash } from 'node:crypto'
import { matchesFilter } from './filters.ts'
import { attribute, conversionValue, goalVersionAt, type DeliveryView, type Mark } from './goals.ts'
import { columnsSetBy, type Channel, type DeliveryFact } from './lifecycle.ts'
import type { CampaignDef, EngineConfig, Goal } from './model.ts'
import { PersonState, type TimelineEvent } from './person-state.ts'

/**
 * One person's whole evaluation (R3): replays their log in rule order (R2),
 * with the instants at which time alone changes something (R22, R23), and
 * returns every segment membership, journey, delivery attribution and
 * conversion the rules give. A pure function of the log, the configuration
 * and `now`, so streaming evaluation and a full recompute agree whatever order
 * or concurrency the inputs arrived in.
 */

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

/** A judged candidate that did not convert, with why (for explanations and tests). */
export interface CandidateDecision {
  at: number
  messageId: string | null
  journeyId: string
  converts: boolean
  reason: string
}

export interface PersonEvaluation {
  memberships: MembershipRecord[]
  journeys: JourneyRecord[]
  deliveries: DeliveryRecord[]
  conversions: ConversionRecord[]
  decisions: CandidateDecision[]
  /** The next instant after `now` at which time alone changes something; when to look again. */
  nextWakeAt: number | null
}

interface Journey extends JourneyRecord {
  campaign: CampaignDef
  triggerProperties: Record<string, unknown> | null
  /** R15: the segments the person was in at entry, for whichever goal version judges a candidate (R13). */
  membersAtEntry: ReadonlySet<string>
  deliveries: Delivery[]
}

/** R15: a segment goal already met at entry (in the segment for `join`, outside it for `leave`) can never convert. */
function goalMetAtEntry(j: Journey, goal: Goal | null | undefined): boolean {
  return goal?.kind === 'segment' && (goal.on === 'join') === j.membersAtEntry.has(goal.segment)
}

/** R2: processing time, ties broken by persist order. */
const ruleOrder = (a: TimelineEvent, b: TimelineEvent) => a.receivedAt - b.receivedAt || a.seq - b.seq

interface Delivery extends DeliveryView {
  journey: Journey
  campaignKey: string
  convertedAt: number | null
}

export const JOURNEY_COMPLETED = 'Journey Completed'

/** Deterministic journey ids: the same entry gives the same id in every recompute. */
export function journeyIdFor(campaignKey: string, personId: string, entryMessageId: string | null, enteredAt: number): string {
  const basis = entryMessageId === null ? `${campaignKey}\u0000${personId}\u0000${enteredAt}` : `${campaignKey}\u0000${entryMessageId}`
  return `j_${createHash('sha256').update(basis).digest('base64url').slice(0, 22)}`
}

/** Which configured campaign a sender's `campaign_id` names: its key or one of its external ids (R4). */
export function campaignResolver(campaigns: readonly CampaignDef[]): (ref: string | null) => CampaignDef | undefined {
  const byRef = new Map<string, CampaignDef>()
  for (const c of campaigns) for (const id of c.externalIds) byRef.set(id, c)
  for (const c of campaigns) byRef.set(c.key, c) // a key wins over another campaign's external id
  return (ref) => (ref === null ? undefined : byRef.get(ref))
}

export function evaluatePerson(personId: string, input: readonly PersonEvent[], config: EngineConfig, now: number): PersonEvaluation {
  // R2, R3: replay in rule order whatever order the log was read in (a late webhook retry has a higher seq but an earlier received_at).
  const events = [...input].sort(ruleOrder)
  const state = new PersonState(config.segments, config.campaigns.map((c) => c.filters))
  const resolve = campaignResolver(config.campaigns)
  const memberships: MembershipRecord[] = []
  const openMembership = new Map<string, MembershipRecord>()
  const journeys: Journey[] = []
  const latest = new Map<string, Journey>()
  const deliveries = new Map<string, Delivery>()
  const decisions: CandidateDecision[] = []
  const conversions: ConversionRecord[] = []
  /** The sender's journey_id per delivery, for `Journey Completed` naming one. */
  const deliveryJourneyRef = new Map<string, string>()
  // R5: revocations act whenever they arrive, so they are known up front.
  const revoked = new Set(events.filter((e) => e.delivery?.step === 'revoked').map((e) => e.delivery!.deliveryId))

  const isActive = (j: Journey | undefined): j is Journey => !!j && j.exitedAt === null && j.completedAt === null

  const recordSegmentChanges = (t: number, messageId: string | null, joined: string[], left: string[]) => {
    for (const key of joined) {
      const m: MembershipRecord = { segmentKey: key, joinedAt: t, leftAt: null, joinMessageId: messageId, leaveMessageId: null }
      memberships.push(m)
      openMembership.set(key, m)
    }
    for (const key of left) {
      const m = openMembership.get(key)
      if (m) {
        m.leftAt = t
        m.leaveMessageId = messageId
        openMembership.delete(key)
      }
    }
  }

  const unmatched = (c: CampaignDef, t: number) =>
    (c.trigger?.kind === 'segment' && !state.members.has(c.trigger.segment)) || !state.matches(c.filters, t)

  /** Does this moment's candidate meet the goal in force at `t` (R13)? Whether the journey may use it is R14's question. */
  const goalCandidate = (j: Journey, t: number, e: PersonEvent | null, joined: string[], left: string[]) => {
    const inForce = goalVersionAt(j.campaign, t)
    if (!inForce?.goal) return null
    const goal = inForce.goal
    if (goal.kind === 'event') {
      if (!e || e.name !== goal.event || !(e.type === 'track' || e.type === 'page' || e.type === 'screen')) return null
      if (!matchesFilter(goal.where, e.properties, { attributes: state.attributes, trigger: j.triggerProperties })) return null
    } else if (!(goal.on === 'join' ? joined : left).includes(goal.segment)) return null
    return { goal, version: inForce.version }
  }

  const exitIfDue = (j: Journey, t: number, e: PersonEvent | null, joined: string[], left: string[], atEntry: boolean) => {
    if (!isActive(j)) return
    const exit = j.campaign.exit
    const onGoal = exit === 'on_goal' || exit === 'on_goal_or_unmatch'
    const onUnmatch = exit === 'on_unmatch' || exit === 'on_goal_or_unmatch'
    // R14: only a goal in force at entry counts (R18). R19: at entry a segment
    // goal is met by being in (join) or out of (leave) the segment already.
    const goalMet =
      j.goalVersion !== null && (goalCandidate(j, t, e, joined, left) !== null || (atEntry && goalMetAtEntry(j, goalVersionAt(j.campaign, t)?.goal)))
    if (onGoal && goalMet) {
      j.exitedAt = t
      j.exitReason = 'goal'
    } else if (onUnmatch && unmatched(j.campaign, t)) {
      j.exitedAt = t
      j.exitReason = 'unmatch'
    }
  }

  const enter = (c: CampaignDef, t: number, cause: EntryCause, e: PersonEvent | null) => {
    const inForce = goalVersionAt(c, t)
    const goal: Goal | null = inForce?.goal ?? null
    const j: Journey = {
      journeyId: journeyIdFor(c.key, personId, e?.messageId ?? null, t),
      campaignKey: c.key,
      enteredAt: t,
      entryCause: cause,
      entryMessageId: e?.messageId ?? null,
      goalVersion: goal ? inForce!.version : null,
      exitedAt: null,
      exitReason: null,
      completedAt: null,
      convertedAt: null,
      campaign: c,
      triggerProperties: cause === 'event_trigger' && e ? e.properties : null,
      membersAtEntry: new Set(state.members),
      deliveries: [],
    }
    journeys.push(j)
    latest.set(c.key, j)
    return j
  }

  /** R10–R16: judges this moment's candidate for every journey of the campaign not yet converted. */
  const convert = (c: CampaignDef, t: number, e: PersonEvent | null, joined: string[], left: string[]) => {
    for (const j of journeys) {
      if (j.campaign !== c) continue
      const candidate = goalCandidate(j, t, e, joined, left)
      if (!candidate) continue
      const messageId = candidate.goal.kind === 'event' ? e!.messageId : (e?.messageId ?? null)
      const decide = (converts: boolean, reason: string) => decisions.push({ at: t, messageId, journeyId: j.journeyId, converts, reason })
      if (j.goalVersion === null) decide(false, 'no-goal-at-entry') // R14
      else if (j.convertedAt !== null) decide(false, 'already-converted') // R12
      else if (goalMetAtEntry(j, candidate.goal)) decide(false, 'goal-met-at-entry') // R15
      else {
        const verdict = attribute(j.deliveries, candidate.goal, t, c.webhookConversions)
        if (!verdict.converts) decide(false, verdict.reason)
        else {
          decide(true, 'converted')
          j.convertedAt = t
          const d = deliveries.get(verdict.deliveryId)!
          d.convertedAt = t
          conversions.push({
            journeyId: j.journeyId,
            campaignKey: c.key,
            deliveryId: d.deliveryId,
            goalVersion: candidate.version,
            goalType: candidate.goal.kind,
            eventMessageId: messageId,
            convertedAt: t,
            anchorAt: verdict.anchor.at,
            attributedVia: candidate.goal.after,
            channel: verdict.channel,
            value: e && candidate.goal.kind === 'event' ? conversionValue(candidate.goal, e.properties) : null,
          })
        }
      }
    }
  }
  const observeDelivery = (c: CampaignDef, t: number, e: PersonEvent, input: DeliveryFact, joined: string[], left: string[]) => {
    let d = deliveries.get(input.deliveryId)
    if (!d) {
      // R17: a delivery attaches to the active journey, or to an exited one
      // as after_exit (R20); with none, or after completion, it opens one.
      let j = latest.get(c.key)
      if (!j || j.completedAt !== null) {
        j = enter(c, t, 'delivery', e)
        exitIfDue(j, t, e, joined, left, true) // R19; then this delivery is after_exit
      }
      d = { deliveryId: input.deliveryId, channel: input.channel, revoked: revoked.has(input.deliveryId), afterExit: j.exitedAt !== null, journey: j, campaignKey: c.key, convertedAt: null }
      deliveries.set(input.deliveryId, d)
      j.deliveries.push(d)
    }
    const leftBefore = d.sent !== undefined
    const mark: Mark = { at: t, seq: e.seq }
    for (const column of columnsSetBy(input.step)) {
      const step = column.slice(0, -3) as 'sent' | 'delivered' | 'opened' | 'clicked' | 'drafted' | 'attempted' | 'failed'
      if (step === 'sent' || step === 'delivered' || step === 'opened' || step === 'clicked') d[step] ??= mark
    }
    // R20 with R5: the person receives a message when it leaves (sent or a
    // later step), not when it is drafted or attempted; one drafted before the
    // exit and sent after it was received after the exit.
    if (!leftBefore && d.sent !== undefined) d.afterExit = d.journey.exitedAt !== null
  }

  const moment = (t: number, e: PersonEvent | null) => {
    if (e) state.observe(e)
    const { joined, left } = state.refreshSegments(t)
    recordSegmentChanges(t, e?.messageId ?? null, joined, left)
    for (const c of config.campaigns) {
      const current = latest.get(c.key)
      // R22: the sender completes the journey.
      if (e?.name === JOURNEY_COMPLETED && e.type === 'track' && isActive(current) && resolve(ref(e.properties.campaign_id) ?? ref(e.properties.canvas_id)) === c) {
        const named = ref(e.properties.journey_id)
        if (named === null || named === current.journeyId || current.deliveries.some((d) => deliveryJourneyRef.get(d.deliveryId) === named))
          current.completedAt = t
      }
      if (e?.delivery && e.delivery.step !== 'recorded' && resolve(e.delivery.campaignRef) === c) {
        if (e.delivery.journeyRef !== null && !deliveryJourneyRef.has(e.delivery.deliveryId))
          deliveryJourneyRef.set(e.delivery.deliveryId, e.delivery.journeyRef)
        observeDelivery(c, t, e, e.delivery, joined, left)
      }
      // R17: triggers start a journey when none is active.
      const trigger = c.trigger
      const triggered =
        trigger?.kind === 'event'
          ? !!e && e.type === 'track' && e.name === trigger.event && matchesFilter(trigger.where, e.properties, { attributes: state.attributes, trigger: null })
          : trigger?.kind === 'segment' && joined.includes(trigger.segment)
      if (triggered && !isActive(latest.get(c.key)) && state.matches(c.filters, t)) {
        const j = enter(c, t, trigger!.kind === 'event' ? 'event_trigger' : 'segment_trigger', e)
        exitIfDue(j, t, e, joined, left, true) // R19
      }
      convert(c, t, e, joined, left)
      const active = latest.get(c.key)
      if (isActive(active)) exitIfDue(active, t, e, joined, left, false) // R18
    }
  }
  // R22: journeys outlive their journey_ttl.
  const nextTtl = (after: number) => {
    let next: number | null = null
    for (const j of latest.values())
      if (isActive(j)) {
        const at = j.enteredAt + j.campaign.journeyTtlMs
        if (at > after && (next === null || at < next)) next = at
      }
    return next
  }
  const nextTick = (after: number) => {
    const a = state.nextExpiry(after)
    const b = nextTtl(after)
    return a === null ? b : b === null ? a : Math.min(a, b)
  }
  const tick = (t: number) => {
    for (const j of latest.values()) if (isActive(j) && j.enteredAt + j.campaign.journeyTtlMs === t) j.completedAt = t
    moment(t, null)
  }

  let last = -Infinity
  let i = 0
  for (;;) {
    const nextEventAt = i < events.length ? events[i].receivedAt : Infinity
    const at = nextTick(last)
    // Time-caused changes at an instant come before inputs processed at the same
    // instant. An instant before a persisted input is always replayed (R3: the
    // outcome of the log must not depend on when it is evaluated); after the
    // last input, only up to `now`.
    if (at !== null && at <= nextEventAt && (at <= now || i < events.length)) {
      tick(at)
      last = at
      continue
    }
    if (i >= events.length) break
    const e = events[i++]
    moment(e.receivedAt, e)
    last = Math.max(last, e.receivedAt)
  }

  return {
    memberships,
    journeys: journeys.map(({ campaign, triggerProperties, membersAtEntry, deliveries: _d, ...record }) => record),
    deliveries: [...deliveries.values()].map((d) => ({
      deliveryId: d.deliveryId,
      campaignKey: d.campaignKey,
      journeyId: d.journey.journeyId,
      afterExit: d.afterExit,
      convertedAt: d.convertedAt,
    })),
    conversions,
    decisions,
    nextWakeAt: nextTick(Math.max(last, now)),
  }
}

function ref(value: unknown): string | null {
  if (typeof value === 'string' && value !== '') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return null
}
