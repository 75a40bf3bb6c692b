/**
 * Small builders for the pure rule core: a person's log (events with
 * increasing `seq`, R2) and configuration with sane defaults, so a test states
 * only what its rule is about.
 */
import { evaluatePerson, type PersonEvaluation, type PersonEvent } from '../../../src/core/evaluate-person.ts'
import type { Channel, Step } from '../../../src/core/lifecycle.ts'
import type {
  CampaignDef,
  EngineConfig,
  Goal,
  GoalAfter,
  GoalVersion,
  Operator,
  PersonCondition,
  PersonFilter,
  PropertyCondition,
  PropertyFilter,
  SegmentDef,
  Trigger,
} from '../../../src/core/model.ts'

export const SEC = 1_000
export const MIN = 60 * SEC
export const HOUR = 60 * MIN
export const DAY = 24 * HOUR

/** The origin of every test's clock; `at(ms)` is an instant relative to it. */
export const T0 = Date.parse('2026-03-01T00:00:00.000Z')
export const at = (offsetMs: number) => T0 + offsetMs
export const iso = (t: number) => new Date(t).toISOString()

// ---------------------------------------------------------------- the log

const EMAIL_NAMES: Record<Step, string> = {
  drafted: 'Email Drafted',
  attempted: 'Email Attempted',
  sent: 'Email Sent',
  delivered: 'Email Delivered',
  opened: 'Email Opened',
  clicked: 'Email Link Clicked',
  revoked: 'Email Bounced',
  recorded: 'Email Unsubscribed',
}

export interface DeliveryOptions {
  campaign?: string
  channel?: Channel
  journeyRef?: string | null
  actionId?: string | null
}

/** A person's log. Every added input gets the next `seq` (the persist order, R2) and a messageId `m<seq>`. */
export class Log {
  readonly events: PersonEvent[] = []
  private seq = 0

  add(type: string, name: string | null, properties: Record<string, unknown>, receivedAt: number, delivery: PersonEvent['delivery'] = null): PersonEvent {
    const seq = ++this.seq
    const e: PersonEvent = { messageId: `m${seq}`, seq, receivedAt, type, name, properties, delivery }
    this.events.push(e)
    return e
  }

  track(name: string, properties: Record<string, unknown>, receivedAt: number): PersonEvent {
    return this.add('track', name, properties, receivedAt)
  }

  page(name: string, receivedAt: number): PersonEvent {
    return this.add('page', 'Page Viewed', { name }, receivedAt)
  }

  identify(traits: Record<string, unknown>, receivedAt: number): PersonEvent {
    return this.add('identify', null, traits, receivedAt)
  }

  /** A lifecycle event (R4) of delivery `deliveryId`, for campaign `c1` by email unless told. */
  delivery(deliveryId: string, step: Step, receivedAt: number, options: DeliveryOptions = {}): PersonEvent {
    const channel = options.channel ?? 'email'
    const campaign = options.campaign ?? 'c1'
    const name = channel === 'email' ? EMAIL_NAMES[step] : `${channel} ${step}`
    const properties: Record<string, unknown> = { delivery_id: deliveryId, campaign_id: campaign }
    if (options.journeyRef) properties.journey_id = options.journeyRef
    return this.add('track', name, properties, receivedAt, {
      deliveryId,
      campaignRef: campaign,
      journeyRef: options.journeyRef ?? null,
      actionId: options.actionId ?? null,
      channel,
      step,
    })
  }

  /** `Journey Completed` (R22). */
  completed(campaignId: string, receivedAt: number, journeyId?: string): PersonEvent {
    const properties: Record<string, unknown> = { campaign_id: campaignId }
    if (journeyId !== undefined) properties.journey_id = journeyId
    return this.track('Journey Completed', properties, receivedAt)
  }

  get lastAt(): number {
    return Math.max(T0, ...this.events.map((e) => e.receivedAt))
  }
}

/** Evaluates person `p1` at `now` (default: the latest processing time in the log). */
export function run(log: Log, config: EngineConfig, now: number = log.lastAt): PersonEvaluation {
  return evaluatePerson('p1', log.events, config, now)
}

// ---------------------------------------------------------------- conditions

export const lit = (value: unknown) => ({ literal: value })

/** A property condition against a literal (or no value, for exists/not_exists). */
export function prop(property: string, op: Operator, ...value: [] | [unknown]): PropertyCondition {
  return value.length === 0 ? { property, op } : { property, op, value: lit(value[0]) }
}
export const propAttr = (property: string, op: Operator, attribute: string): PropertyCondition => ({ property, op, value: { attribute } })
export const propTrigger = (property: string, op: Operator, trigger: string): PropertyCondition => ({ property, op, value: { trigger } })

export const all = (...conditions: PropertyCondition[]): PropertyFilter => ({ match: 'all', conditions })
export const any = (...conditions: PropertyCondition[]): PropertyFilter => ({ match: 'any', conditions })

export const attr = (attribute: string, op: Operator, value?: unknown): PersonCondition => ({ kind: 'attribute', attribute, op, value })
export function counted(
  event: string,
  op: 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte',
  value: number,
  withinMs?: number,
  where?: PropertyFilter,
): PersonCondition {
  return { kind: 'event', event, count: { op, value }, withinMs, where }
}
export const inSegment = (segment: string): PersonCondition => ({ kind: 'segment', segment, op: 'in' })
export const notInSegment = (segment: string): PersonCondition => ({ kind: 'segment', segment, op: 'not_in' })

export const personAll = (...conditions: PersonCondition[]): PersonFilter => ({ match: 'all', conditions })
export const personAny = (...conditions: PersonCondition[]): PersonFilter => ({ match: 'any', conditions })

export function segment(key: string, match: 'all' | 'any', ...conditions: PersonCondition[]): SegmentDef {
  return { key, name: key, match, conditions }
}

// ---------------------------------------------------------------- goals and campaigns

export interface GoalOptions {
  within?: number
  after?: GoalAfter
  where?: PropertyFilter
  value?: string
}

/** An event goal; by default within 1 day after delivery. */
export function eventGoal(event: string, options: GoalOptions = {}): Goal {
  return { kind: 'event', event, where: options.where, withinMs: options.within ?? DAY, after: options.after ?? 'delivered', value: options.value }
}

export function segmentGoal(segmentKey: string, on: 'join' | 'leave', options: Omit<GoalOptions, 'where' | 'value'> = {}): Goal {
  return { kind: 'segment', segment: segmentKey, on, withinMs: options.within ?? DAY, after: options.after ?? 'delivered' }
}

/** Goal versions 1, 2, … effective from the given instants (R13). */
export function versions(...list: Array<[effectiveFrom: number, goal: Goal | null]>): GoalVersion[] {
  return list.map(([from, goal], i) => ({ version: i + 1, effectiveFrom: iso(from), goal }))
}

/** Before every test's inputs: the default goal is in force for all of them. */
export const LONG_AGO = T0 - 365 * DAY

export type CampaignOptions = Partial<Omit<CampaignDef, 'goals'>> & {
  /** The single goal version, in force since LONG_AGO; null for a campaign without goal. */
  goal?: Goal | null
  goals?: GoalVersion[]
}

/**
 * Campaign `c1`: triggered by `Cart Abandoned`, goal `Order Completed` within
 * 1 day after delivery, exit on_unmatch (the default of R18), no filters,
 * journey_ttl 90 days.
 */
export function campaign(options: CampaignOptions = {}): CampaignDef {
  const { goal, goals, ...rest } = options
  const trigger: Trigger = { kind: 'event', event: 'Cart Abandoned' }
  const goalVersions = goals ?? (goal === null ? [] : versions([LONG_AGO, goal ?? eventGoal('Order Completed')]))
  return {
    key: 'c1',
    name: 'Campaign',
    externalIds: [],
    trigger,
    exit: 'on_unmatch',
    webhookConversions: false,
    journeyTtlMs: 90 * DAY,
    goals: goalVersions,
    ...rest,
  }
}

export function config(campaigns: CampaignDef[] = [campaign()], segments: SegmentDef[] = []): EngineConfig {
  return { campaigns, segments, deliveryEvents: [] }
}
