/**
 * The configuration the rules run on (CONTRACT.md, configuration document),
 * as validated and normalised: durations in milliseconds, defaults filled in.
 */
import type { Channel, Step } from './lifecycle.ts'

export const OPERATORS = [
  'eq',
  'neq',
  'gt',
  'gte',
  'lt',
  'lte',
  'contains',
  'not_contains',
  'starts_with',
  'ends_with',
  'exists',
  'not_exists',
  'in',
  'not_in',
] as const
export type Operator = (typeof OPERATORS)[number]

/** A condition's right-hand side: a literal, a person attribute, or a trigger property (R9). */
export type ValueRef = { literal: unknown } | { attribute: string } | { trigger: string }

/** A condition on an event property (goal and trigger `where`). */
export interface PropertyCondition {
  property: string
  op: Operator
  value?: ValueRef
}

export interface PropertyFilter {
  match: 'all' | 'any'
  conditions: PropertyCondition[]
}

/** Segment and audience conditions (R24). */
export type PersonCondition =
  | { kind: 'attribute'; attribute: string; op: Operator; value?: unknown }
  | {
      kind: 'event'
      event: string
      where?: PropertyFilter
      count: { op: 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte'; value: number }
      /** Rolling window in ms; absent = all history. */
      withinMs?: number
    }
  | { kind: 'segment'; segment: string; op: 'in' | 'not_in' }

export interface PersonFilter {
  match: 'all' | 'any'
  conditions: PersonCondition[]
}

export interface SegmentDef {
  key: string
  name: string
  match: 'all' | 'any'
  conditions: PersonCondition[]
}

export type GoalAfter = 'delivered' | 'opened' | 'clicked'

export type Goal =
  | { kind: 'event'; event: string; where?: PropertyFilter; withinMs: number; after: GoalAfter; value?: string }
  | { kind: 'segment'; segment: string; on: 'join' | 'leave'; withinMs: number; after: GoalAfter; value?: undefined }

export interface GoalVersion {
  version: number
  /** ISO time from which this version is in force (R13). */
  effectiveFrom: string
  /** null: the goal was removed from this moment on. */
  goal: Goal | null
}

export type ExitSetting = 'on_unmatch' | 'on_goal' | 'on_goal_or_unmatch' | 'never'

export type Trigger = { kind: 'event'; event: string; where?: PropertyFilter } | { kind: 'segment'; segment: string }

export interface CampaignDef {
  key: string
  name: string
  externalIds: string[]
  trigger?: Trigger
  filters?: PersonFilter
  exit: ExitSetting
  webhookConversions: boolean
  journeyTtlMs: number
  /** Every goal version, oldest first. */
  goals: GoalVersion[]
}

export interface DeliveryEventDef {
  event: string
  channel: Channel
  step: Step
}

/** The configuration in force: what one evaluation runs on. */
export interface EngineConfig {
  segments: SegmentDef[]
  campaigns: CampaignDef[]
  deliveryEvents: DeliveryEventDef[]
}
