/**
 * What validating a configuration document gives (CONTRACT.md, "Configuration
 * document"), its error, and the choices the contract leaves open (bounds,
 * defaults), which docs/configuration.md lists.
 */
import { DAY_MS } from '../duration.ts'
import type { CampaignDef, DeliveryEventDef, Goal, SegmentDef } from '../model.ts'
import type { WebhookDef } from './webhooks.ts'

/** A campaign as the document states it: its one goal, not the version history (R13). */
export interface CampaignDocument extends Omit<CampaignDef, 'goals'> {
  goal?: Goal
  /** The goal's `effective_from`, normalised to an ISO instant. */
  effectiveFrom?: string
}

/** What a schedule runs: a recompute (R3) of every campaign or one, or a retention run. */
export type ScheduleJob = { kind: 'recompute'; campaign?: string; dryRun: boolean } | { kind: 'retention'; olderThanMs: number }

/** When a schedule runs: a cron `pattern` in a time zone (`tz`, default UTC), or an `every` interval. */
export type ScheduleTiming = { pattern: string; tz: string } | { everyMs: number }

/** A named batch job. */
export type ScheduleDef = { name: string; job: ScheduleJob } & ScheduleTiming

export interface ConfigDocument {
  segments: SegmentDef[]
  campaigns: CampaignDocument[]
  deliveryEvents: DeliveryEventDef[]
  /** Absent when the document has no `schedules` section (the same as none). */
  schedules?: ScheduleDef[]
  /** Absent when the document has no `webhooks` section (the same as none); webhooks.ts. */
  webhooks?: WebhookDef[]
}

export type ValidationResult = { ok: true; document: ConfigDocument } | { ok: false; errors: string[] }

/** A document that failed validation, with every error (`path: message`). */
export class ConfigDocumentError extends Error {
  constructor(
    readonly errors: string[],
    what = 'the configuration document',
  ) {
    super(`${what} is invalid (${errors.length} error${errors.length === 1 ? '' : 's'}); nothing was saved:\n  ${errors.join('\n  ')}`)
    this.name = 'ConfigDocumentError'
  }
}

export const KEY_PATTERN = /^[a-z0-9_-]{1,64}$/

const SECOND = 1000
const DAY = DAY_MS

/** Bounds of every duration, in ms (R10 for goals; the others are goalpost's choice). */
export const DURATION_BOUNDS = {
  goalWithin: { min: SECOND, max: 90 * DAY },
  segmentEventWithin: { min: SECOND, max: 3650 * DAY },
  journeyTtl: { min: SECOND, max: 3650 * DAY },
} as const

export const DEFAULT_JOURNEY_TTL_MS = 90 * DAY

/** JSON with object keys sorted: equal for equal content, whatever the key order (goal comparison, R13). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )
}
