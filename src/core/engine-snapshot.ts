import { isAttributableChannel, type DeliveryView, type Mark } from './goals.ts'
import type { CampaignDef } from './model.ts'
import type { Engine } from './engine.ts'
import { journeyIdFor, type JourneyRecord } from './records.ts'
import { STATE_VERSION, type DeliverySnapshot, type EngineSnapshot, type JourneySnapshot, type MarkSnapshot } from './engine-state.ts'

/**
 * Between the engine's live objects and the stored state (engine-state.ts):
 * what is kept, what is dropped because no later instant can change an
 * outcome through it (and an input about it makes the engine replay), and how a kept state is brought back.
 */

export interface Journey extends JourneyRecord {
  campaign: CampaignDef
  triggerProperties: Record<string, unknown> | null
  /** R15: the segments the person was in at entry, for whichever goal version judges a candidate (R13). */
  membersAtEntry: ReadonlySet<string>
  /** R22: journey_ids senders named on its deliveries. */
  refs: Set<string>
  deliveries: Delivery[]
}

export interface Delivery extends DeliveryView {
  journey: Journey
  campaignKey: string
  convertedAt: number | null
  journeyRef: string | null
  /** The processing time of the last input about it. */
  lastTouched: number
}

/** What the state needs to know of a campaign's goal versions, once per configuration. */
interface GoalFacts {
  /** R10: the longest window any goal version has (windows are at most 90 days). */
  longestWindow: number
  /** R9: the trigger properties a goal version refers to ({trigger: path}), as top-level keys. */
  triggerKeys: string[]
  /** R15: the segments a goal version joins or leaves. */
  goalSegments: Set<string>
}
const goalFacts = new WeakMap<CampaignDef, GoalFacts>()

function factsOf(c: CampaignDef): GoalFacts {
  let facts = goalFacts.get(c)
  if (!facts) goalFacts.set(c, (facts = { longestWindow: longestWindow(c), triggerKeys: triggerKeys(c), goalSegments: goalSegments(c) }))
  return facts
}

function longestWindow(c: CampaignDef): number {
  let ms = 0
  for (const v of c.goals) if (v.goal && v.goal.withinMs > ms) ms = v.goal.withinMs
  return ms
}

function triggerKeys(c: CampaignDef): string[] {
  const keys = new Set<string>()
  for (const v of c.goals)
    if (v.goal?.kind === 'event')
      for (const cond of v.goal.where?.conditions ?? [])
        if (cond.value && 'trigger' in cond.value) {
          keys.add(cond.value.trigger) // valueAt tries the whole path as a key first
          keys.add(cond.value.trigger.split('.')[0])
        }
  return [...keys]
}

function goalSegments(c: CampaignDef): Set<string> {
  return new Set(c.goals.flatMap((v) => (v.goal?.kind === 'segment' ? [v.goal.segment] : [])))
}

/**
 * How long a delivery is kept after its last input whatever else holds:
 * lifecycle events (opens, clicks, a late bounce) keep coming for days after
 * a conversion, and an input about a dropped delivery costs a replay.
 */
export const DELIVERY_MEMORY_MS = 7 * 86_400_000

/**
 * Whether a delivery is kept in the stored state at instant `t`. Without an
 * input of its own, a delivery can still change an outcome only by being
 * credited with a conversion: its journey has not converted (R12) and had a
 * goal at entry (R14), it can be attributed (R5, R6, R20), and its latest
 * mark is recent enough for a window from it to reach `t` (R10). An input
 * about a dropped delivery makes the evaluation replay the log, so a recent
 * one is kept anyway (DELIVERY_MEMORY_MS).
 */
function worthKeeping(d: Delivery, t: number): boolean {
  const j = d.journey
  if (d.lastTouched + DELIVERY_MEMORY_MS >= t) return true
  return (
    j.convertedAt === null &&
    j.goalVersion !== null &&
    !d.revoked &&
    !d.afterExit &&
    isAttributableChannel(d.channel, j.campaign.webhookConversions) &&
    d.lastTouched + factsOf(j.campaign).longestWindow >= t
  )
}

const markOut = (m: Mark | undefined): MarkSnapshot | undefined => (m ? [m.at, m.seq] : undefined)
const markIn = (m: MarkSnapshot | undefined): Mark | undefined => (m ? { at: m[0], seq: m[1] } : undefined)
const finite = (n: number): number | null => (Number.isFinite(n) ? n : null)

function deliveryOut(d: Delivery): DeliverySnapshot {
  const s: DeliverySnapshot = { id: d.deliveryId, ch: d.channel, lt: d.lastTouched }
  if (d.sent) s.s = markOut(d.sent)
  if (d.delivered) s.dl = markOut(d.delivered)
  if (d.opened) s.o = markOut(d.opened)
  if (d.clicked) s.c = markOut(d.clicked)
  if (d.revoked) s.rv = 1
  if (d.afterExit) s.ax = 1
  if (d.convertedAt !== null) s.cv = d.convertedAt
  if (d.journeyRef !== null) s.ref = d.journeyRef
  return s
}

const CAUSE_CODE = { event_trigger: 'e', segment_trigger: 's', delivery: 'd' } as const
const CAUSE = { e: 'event_trigger', s: 'segment_trigger', d: 'delivery' } as const

function journeyOut(j: Journey, latest: boolean, deliveries: DeliverySnapshot[]): JourneySnapshot {
  const s: JourneySnapshot = { c: j.campaignKey, at: j.enteredAt, cause: CAUSE_CODE[j.entryCause] }
  if (j.entryMessageId !== null) s.m = j.entryMessageId
  if (j.goalVersion !== null) s.gv = j.goalVersion
  if (j.exitedAt !== null) s.x = j.exitedAt
  if (j.exitReason !== null) s.xr = j.exitReason
  if (j.completedAt !== null) s.done = j.completedAt
  if (j.convertedAt !== null) s.cv = j.convertedAt
  if (j.triggerProperties) {
    const trig: Record<string, unknown> = {}
    for (const k of factsOf(j.campaign).triggerKeys) if (Object.hasOwn(j.triggerProperties, k)) trig[k] = j.triggerProperties[k]
    s.trig = trig
  }
  const segments = factsOf(j.campaign).goalSegments
  const mae = [...j.membersAtEntry].filter((k) => segments.has(k))
  if (mae.length > 0) s.mae = mae
  if (latest && j.refs.size > 0) s.refs = [...j.refs]
  if (latest) s.last = 1
  if (deliveries.length > 0) s.d = deliveries
  return s
}

/** The state to store after a run that ended at instant `t`, without what can no longer matter (see worthKeeping). */
export function snapshotOf(engine: Engine, t: number): EngineSnapshot {
  const journeys: JourneySnapshot[] = []
  for (const j of engine.journeys) {
    const latest = engine.latest.get(j.campaignKey) === j
    const kept = j.deliveries.filter((d) => worthKeeping(d, t))
    // The latest journey decides where a delivery goes and whether a trigger
    // starts a new one (R17), and answers eligibility (R21); once completed
    // without an exit it acts in every rule as if there were none.
    const matters = latest && !(j.completedAt !== null && j.exitedAt === null)
    if (matters || kept.length > 0) journeys.push(journeyOut(j, latest, kept.map(deliveryOut)))
  }
  return {
    v: STATE_VERSION,
    at: engine.watermark?.at ?? null,
    seq: engine.watermark?.seq ?? null,
    t: finite(t),
    attrs: engine.state.attributes,
    in: [...engine.state.members],
    n: engine.state.exportCounters(t),
    open: [...engine.openMembership.values()].map((m) => [m.segmentKey, m.joinedAt, m.joinMessageId]),
    j: journeys,
  }
}

/** The journeys of a stored state, live again; null when one names a campaign the configuration lacks. */
export function journeysFromSnapshot(
  personId: string,
  saved: readonly JourneySnapshot[],
  campaigns: ReadonlyMap<string, CampaignDef>,
  revoked: ReadonlySet<string>,
): Array<{ journey: Journey; latest: boolean }> | null {
  const out: Array<{ journey: Journey; latest: boolean }> = []
  for (const s of saved) {
    const campaign = campaigns.get(s.c)
    if (!campaign) return null
    const entryMessageId = s.m ?? null
    let id: string | undefined
    const journey: Journey = {
      // Derived when first asked (a hash): most resumed journeys are never written or judged.
      get journeyId() {
        return (id ??= journeyIdFor(s.c, personId, entryMessageId, s.at))
      },
      campaignKey: s.c,
      enteredAt: s.at,
      entryCause: CAUSE[s.cause],
      entryMessageId,
      goalVersion: s.gv ?? null,
      exitedAt: s.x ?? null,
      exitReason: s.xr ?? null,
      completedAt: s.done ?? null,
      convertedAt: s.cv ?? null,
      campaign,
      triggerProperties: s.trig ?? null,
      membersAtEntry: new Set(s.mae),
      refs: new Set(s.refs),
      deliveries: [],
    }
    for (const d of s.d ?? [])
      journey.deliveries.push({
        deliveryId: d.id,
        channel: d.ch,
        sent: markIn(d.s),
        delivered: markIn(d.dl),
        opened: markIn(d.o),
        clicked: markIn(d.c),
        revoked: d.rv === 1 || revoked.has(d.id),
        afterExit: d.ax === 1,
        journey,
        campaignKey: s.c,
        convertedAt: d.cv ?? null,
        journeyRef: d.ref ?? null,
        lastTouched: d.lt,
      })
    out.push({ journey, latest: s.last === 1 })
  }
  return out
}

/** A journey's row (what the rules give for it), without the engine's working fields. */
export function journeyRecord(j: Journey): JourneyRecord {
  return {
    journeyId: j.journeyId,
    campaignKey: j.campaignKey,
    enteredAt: j.enteredAt,
    entryCause: j.entryCause,
    entryMessageId: j.entryMessageId,
    goalVersion: j.goalVersion,
    exitedAt: j.exitedAt,
    exitReason: j.exitReason,
    completedAt: j.completedAt,
    convertedAt: j.convertedAt,
  }
}
