import { matchesFilter } from './filters.ts'
import { attribute, conversionValue, goalVersionAt, type Mark } from './goals.ts'
import { columnsSetBy, type DeliveryFact } from './lifecycle.ts'
import type { CampaignDef, EngineConfig, Goal } from './model.ts'
import { PersonState } from './person-state.ts'
import type { EngineSnapshot } from './engine-state.ts'
import { journeyRecord, journeysFromSnapshot, snapshotOf, type Delivery, type Journey } from './engine-snapshot.ts'
import {
  campaignResolver,
  journeyIdFor,
  JOURNEY_COMPLETED,
  type CandidateDecision,
  type ConversionRecord,
  type EntryCause,
  type MembershipRecord,
  type PersonEvaluation,
  type PersonEvent,
} from './records.ts'

/**
 * The rules engine for one person (R3): the state a fold of their inputs has
 * reached, the instants at which time alone changes something (R22, R23),
 * and what one more input or instant does to journeys, deliveries, segment
 * memberships and conversions. A run starts empty (a replay) or from a stored
 * state (engine-snapshot.ts) and gives the rows it created or changed.
 */

/** R15: a segment goal already met at entry (in the segment for `join`, outside it for `leave`) can never convert. */
function goalMetAtEntry(j: Journey, goal: Goal | null | undefined): boolean {
  return goal?.kind === 'segment' && (goal.on === 'join') === j.membersAtEntry.has(goal.segment)
}

const isActive = (j: Journey | undefined): j is Journey => !!j && j.exitedAt === null && j.completedAt === null

type Moment = { t: number; e: PersonEvent | null; joined: string[]; left: string[] }

export class Engine {
  readonly state: PersonState
  readonly resolve: (ref: string | null) => CampaignDef | undefined
  readonly journeys: Journey[] = []
  /** The same journeys by campaign, in entry order. */
  private readonly journeysOf = new Map<string, Journey[]>()
  readonly latest = new Map<string, Journey>()
  readonly deliveries = new Map<string, Delivery>()
  readonly memberships: MembershipRecord[] = []
  readonly openMembership = new Map<string, MembershipRecord>()
  /** Open memberships brought back from a stored state (not in `memberships` until they change). */
  private readonly restoredMemberships = new WeakSet<MembershipRecord>()
  readonly conversions: ConversionRecord[] = []
  readonly decisions: CandidateDecision[] = []
  /** Rows created or changed in this run (all of them in a replay). */
  readonly dirtyJourneys = new Set<Journey>()
  readonly dirtyDeliveries = new Set<Delivery>()
  readonly created = { memberships: 0, journeys: 0, deliveries: 0 }
  watermark: { at: number; seq: number } | null = null
  last = -Infinity

  constructor(
    readonly personId: string,
    readonly config: EngineConfig,
    readonly mode: 'replay' | 'incremental',
    /** R5: revocations act whenever they arrive, so they are known up front. */
    readonly revoked: ReadonlySet<string>,
  ) {
    this.state = new PersonState(config.segments, config.campaigns.map((c) => c.filters))
    this.resolve = campaignResolver(config.campaigns)
  }

  restore(saved: EngineSnapshot): boolean {
    if (!this.state.restoreCounters(saved.n)) return false
    const byKey = new Map(this.config.campaigns.map((c) => [c.key, c]))
    const journeys = journeysFromSnapshot(this.personId, saved.j, byKey, this.revoked)
    if (!journeys) return false
    this.state.attributes = saved.attrs
    for (const key of saved.in) this.state.members.add(key)
    for (const [segmentKey, joinedAt, joinMessageId] of saved.open) {
      const rec: MembershipRecord = { segmentKey, joinedAt, leftAt: null, joinMessageId, leaveMessageId: null }
      this.openMembership.set(segmentKey, rec)
      this.restoredMemberships.add(rec)
    }
    for (const { journey, latest } of journeys) {
      this.add(journey)
      if (latest) this.latest.set(journey.campaignKey, journey)
      for (const d of journey.deliveries) this.deliveries.set(d.deliveryId, d)
    }
    this.watermark = saved.at === null ? null : { at: saved.at, seq: saved.seq! }
    this.last = saved.t ?? -Infinity
    return true
  }

  run(events: readonly PersonEvent[], now: number): PersonEvaluation {
    let i = 0
    for (;;) {
      const nextEventAt = i < events.length ? events[i].receivedAt : Infinity
      const at = this.nextTick(this.last)
      // Time-caused changes at an instant come before inputs processed at the same
      // instant. An instant before a persisted input is always replayed (R3: the
      // outcome of the log must not depend on when it is evaluated); after the
      // last input, only up to `now`.
      if (at !== null && at <= nextEventAt && (at <= now || i < events.length)) {
        this.tick(at)
        this.last = at
        continue
      }
      if (i >= events.length) break
      const e = events[i++]
      this.moment(e.receivedAt, e)
      this.last = Math.max(this.last, e.receivedAt)
      this.watermark = { at: e.receivedAt, seq: e.seq }
    }
    return this.result(now)
  }

  private result(now: number): PersonEvaluation {
    const replay = this.mode === 'replay'
    const journeys = replay ? this.journeys : [...this.dirtyJourneys]
    const deliveries = replay ? [...this.deliveries.values()] : [...this.dirtyDeliveries]
    const end = this.last
    return {
      mode: this.mode,
      memberships: this.memberships,
      journeys: journeys.map(journeyRecord),
      deliveries: deliveries.map((d) => ({
        deliveryId: d.deliveryId,
        campaignKey: d.campaignKey,
        journeyId: d.journey.journeyId,
        afterExit: d.afterExit,
        convertedAt: d.convertedAt,
      })),
      conversions: this.conversions,
      decisions: this.decisions,
      created: this.created,
      nextWakeAt: this.nextTick(Math.max(this.last, now)),
      latestJourney: (key) => {
        const j = this.latest.get(key)
        return j && journeyRecord(j)
      },
      matchesAudience: (c) => this.state.matches(c.filters, end),
      snapshot: snapshotOf(this, end),
    }
  }

  private add(j: Journey): void {
    this.journeys.push(j)
    const list = this.journeysOf.get(j.campaignKey)
    if (list) list.push(j)
    else this.journeysOf.set(j.campaignKey, [j])
  }

  private touch(j: Journey): void {
    this.dirtyJourneys.add(j)
  }

  private recordSegmentChanges(m: Moment): void {
    for (const key of m.joined) {
      const rec: MembershipRecord = { segmentKey: key, joinedAt: m.t, leftAt: null, joinMessageId: m.e?.messageId ?? null, leaveMessageId: null }
      this.memberships.push(rec)
      this.openMembership.set(key, rec)
      this.created.memberships++
    }
    for (const key of m.left) {
      const rec = this.openMembership.get(key)
      if (!rec) continue
      if (this.restoredMemberships.has(rec)) this.memberships.push(rec) // opened before this run: it changes now
      rec.leftAt = m.t
      rec.leaveMessageId = m.e?.messageId ?? null
      this.openMembership.delete(key)
    }
  }

  private unmatched(c: CampaignDef, t: number): boolean {
    return (c.trigger?.kind === 'segment' && !this.state.members.has(c.trigger.segment)) || !this.state.matches(c.filters, t)
  }

  /** Does this moment's candidate meet the goal in force at `t` (R13)? Whether the journey may use it is R14's question. */
  private goalCandidate(j: Journey, m: Moment) {
    const candidate = this.campaignCandidate(j.campaign, m)
    return candidate && this.meetsForJourney(j, candidate.goal, m) ? candidate : null
  }

  /** The part of goalCandidate that does not depend on the journey: the goal in force at `t` (R13) and the event or segment change it asks for. */
  private campaignCandidate(c: CampaignDef, m: Moment) {
    const inForce = goalVersionAt(c, m.t)
    if (!inForce?.goal) return null
    const goal = inForce.goal
    const e = m.e
    if (goal.kind === 'event') {
      if (!e || e.name !== goal.event || !(e.type === 'track' || e.type === 'page' || e.type === 'screen')) return null
    } else if (!(goal.on === 'join' ? m.joined : m.left).includes(goal.segment)) return null
    return { goal, version: inForce.version }
  }

  /** R9: an event goal's filters, which may compare with the journey's trigger properties. */
  private meetsForJourney(j: Journey, goal: Goal, m: Moment): boolean {
    return goal.kind !== 'event' || matchesFilter(goal.where, m.e!.properties, { attributes: this.state.attributes, trigger: j.triggerProperties })
  }

  private exitIfDue(j: Journey, m: Moment, atEntry: boolean): void {
    if (!isActive(j)) return
    const exit = j.campaign.exit
    const onGoal = exit === 'on_goal' || exit === 'on_goal_or_unmatch'
    const onUnmatch = exit === 'on_unmatch' || exit === 'on_goal_or_unmatch'
    // R14: only a goal in force at entry counts (R18). R19: at entry a segment
    // goal is met by being in (join) or out of (leave) the segment already.
    const goalMet =
      j.goalVersion !== null && (this.goalCandidate(j, m) !== null || (atEntry && goalMetAtEntry(j, goalVersionAt(j.campaign, m.t)?.goal)))
    if (onGoal && goalMet) {
      j.exitedAt = m.t
      j.exitReason = 'goal'
      this.touch(j)
    } else if (onUnmatch && this.unmatched(j.campaign, m.t)) {
      j.exitedAt = m.t
      j.exitReason = 'unmatch'
      this.touch(j)
    }
  }

  private enter(c: CampaignDef, m: Moment, cause: EntryCause): Journey {
    const inForce = goalVersionAt(c, m.t)
    const goal: Goal | null = inForce?.goal ?? null
    const e = m.e
    const j: Journey = {
      journeyId: journeyIdFor(c.key, this.personId, e?.messageId ?? null, m.t),
      campaignKey: c.key,
      enteredAt: m.t,
      entryCause: cause,
      entryMessageId: e?.messageId ?? null,
      goalVersion: goal ? inForce!.version : null,
      exitedAt: null,
      exitReason: null,
      completedAt: null,
      convertedAt: null,
      campaign: c,
      triggerProperties: cause === 'event_trigger' && e ? e.properties : null,
      membersAtEntry: new Set(this.state.members),
      refs: new Set(),
      deliveries: [],
    }
    this.add(j)
    this.latest.set(c.key, j)
    this.created.journeys++
    this.touch(j)
    return j
  }

  /** R10–R16: judges this moment's candidate for every journey of the campaign not yet converted. */
  private convert(c: CampaignDef, m: Moment): void {
    const candidate = this.campaignCandidate(c, m)
    if (!candidate) return // most instants are no candidate of the campaign's goal at all
    for (const j of this.journeysOf.get(c.key) ?? []) {
      if (!this.meetsForJourney(j, candidate.goal, m)) continue
      const e = m.e
      const messageId = candidate.goal.kind === 'event' ? e!.messageId : (e?.messageId ?? null)
      const decide = (converts: boolean, reason: string) => this.decisions.push({ at: m.t, messageId, journeyId: j.journeyId, converts, reason })
      if (j.goalVersion === null) decide(false, 'no-goal-at-entry') // R14
      else if (j.convertedAt !== null) decide(false, 'already-converted') // R12
      else if (goalMetAtEntry(j, candidate.goal)) decide(false, 'goal-met-at-entry') // R15
      else {
        const verdict = attribute(j.deliveries, candidate.goal, m.t, c.webhookConversions)
        if (!verdict.converts) decide(false, verdict.reason)
        else {
          decide(true, 'converted')
          j.convertedAt = m.t
          this.touch(j)
          const d = this.deliveries.get(verdict.deliveryId)!
          d.convertedAt = m.t
          this.dirtyDeliveries.add(d)
          this.conversions.push({
            journeyId: j.journeyId,
            campaignKey: c.key,
            deliveryId: d.deliveryId,
            goalVersion: candidate.version,
            goalType: candidate.goal.kind,
            eventMessageId: messageId,
            convertedAt: m.t,
            anchorAt: verdict.anchor.at,
            attributedVia: candidate.goal.after,
            channel: verdict.channel,
            value: e && candidate.goal.kind === 'event' ? conversionValue(candidate.goal, e.properties) : null,
          })
        }
      }
    }
  }

  private observeDelivery(c: CampaignDef, m: Moment, e: PersonEvent, input: DeliveryFact): void {
    let d = this.deliveries.get(input.deliveryId)
    if (!d) {
      // R17: a delivery attaches to the active journey, or to an exited one
      // as after_exit (R20); with none, or after completion, it opens one.
      let j = this.latest.get(c.key)
      if (!j || j.completedAt !== null) {
        j = this.enter(c, m, 'delivery')
        this.exitIfDue(j, m, true) // R19; then this delivery is after_exit
      }
      d = { deliveryId: input.deliveryId, channel: input.channel, revoked: this.revoked.has(input.deliveryId), afterExit: j.exitedAt !== null, journey: j, campaignKey: c.key, convertedAt: null, journeyRef: null, lastTouched: m.t }
      this.deliveries.set(input.deliveryId, d)
      j.deliveries.push(d)
      this.created.deliveries++
      this.dirtyDeliveries.add(d)
    }
    d.lastTouched = m.t
    // R22: the first journey_id a sender names for the delivery.
    if (input.journeyRef !== null && d.journeyRef === null) {
      d.journeyRef = input.journeyRef
      d.journey.refs.add(input.journeyRef)
    }
    const leftBefore = d.sent !== undefined
    const mark: Mark = { at: m.t, seq: e.seq }
    for (const column of columnsSetBy(input.step)) {
      const step = column.slice(0, -3) as 'sent' | 'delivered' | 'opened' | 'clicked' | 'drafted' | 'attempted' | 'failed'
      if (step === 'sent' || step === 'delivered' || step === 'opened' || step === 'clicked') d[step] ??= mark
    }
    // R20 with R5: the person receives a message when it leaves (sent or a
    // later step), not when it is drafted or attempted; one drafted before the
    // exit and sent after it was received after the exit.
    if (!leftBefore && d.sent !== undefined && d.afterExit !== (d.journey.exitedAt !== null)) {
      d.afterExit = d.journey.exitedAt !== null
      this.dirtyDeliveries.add(d)
    }
  }

  private moment(t: number, e: PersonEvent | null): void {
    if (e) this.state.observe(e)
    const { joined, left } = this.state.refreshSegments(t)
    const m: Moment = { t, e, joined, left }
    this.recordSegmentChanges(m)
    for (const c of this.config.campaigns) {
      const current = this.latest.get(c.key)
      // R22: the sender completes the journey.
      if (e?.name === JOURNEY_COMPLETED && e.type === 'track' && isActive(current) && this.resolve(ref(e.properties.campaign_id) ?? ref(e.properties.canvas_id)) === c) {
        const named = ref(e.properties.journey_id)
        if (named === null || named === current.journeyId || current.refs.has(named)) {
          current.completedAt = t
          this.touch(current)
        }
      }
      if (e?.delivery && e.delivery.step !== 'recorded' && this.resolve(e.delivery.campaignRef) === c) this.observeDelivery(c, m, e, e.delivery)
      // R17: triggers start a journey when none is active.
      const trigger = c.trigger
      const triggered =
        trigger?.kind === 'event'
          ? !!e && e.type === 'track' && e.name === trigger.event && matchesFilter(trigger.where, e.properties, { attributes: this.state.attributes, trigger: null })
          : trigger?.kind === 'segment' && joined.includes(trigger.segment)
      if (triggered && !isActive(this.latest.get(c.key)) && this.state.matches(c.filters, t)) {
        const j = this.enter(c, m, trigger!.kind === 'event' ? 'event_trigger' : 'segment_trigger')
        this.exitIfDue(j, m, true) // R19
      }
      this.convert(c, m)
      const active = this.latest.get(c.key)
      if (isActive(active)) this.exitIfDue(active, m, false) // R18
    }
  }

  /** R22: the next instant after `after` at which an active journey outlives its journey_ttl. */
  private nextTtl(after: number): number | null {
    let next: number | null = null
    for (const j of this.latest.values())
      if (isActive(j)) {
        const at = j.enteredAt + j.campaign.journeyTtlMs
        if (at > after && (next === null || at < next)) next = at
      }
    return next
  }

  private nextTick(after: number): number | null {
    const a = this.state.nextExpiry(after)
    const b = this.nextTtl(after)
    return a === null ? b : b === null ? a : Math.min(a, b)
  }

  private tick(t: number): void {
    for (const j of this.latest.values())
      if (isActive(j) && j.enteredAt + j.campaign.journeyTtlMs === t) {
        j.completedAt = t
        this.touch(j)
      }
    this.moment(t, null)
  }
}


function ref(value: unknown): string | null {
  if (typeof value === 'string' && value !== '') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return null
}

