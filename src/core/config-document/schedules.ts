/**
 * `schedules`: named batch jobs (a recompute, R3, or a retention run) that
 * BullMQ starts on a cron `pattern` in a time zone `tz`, or `every` interval;
 * and the checks across the document: a recompute names a campaign the
 * document defines, a retention age outlives everything the rules still need
 * (docs/operations.md, "Retention").
 */
import { CronExpressionParser } from 'cron-parser'
import { z } from 'zod'
import { DAY_MS, formatDuration } from '../duration.ts'
import type { SegmentDef } from '../model.ts'
import type { CampaignDocument, ScheduleDef, ScheduleJob } from './document.ts'
import { FAILED, describe, duration, fail, isMapping, key, kindOf, listNames, rawList, strict, within, type Problem } from './shared.ts'

const SECOND = 1000

/** Bounds of `every` and of a retention's `older_than`. */
export const SCHEDULE_BOUNDS = {
  every: { min: SECOND, max: 3650 * DAY_MS },
  olderThan: { min: DAY_MS, max: 36500 * DAY_MS },
} as const

/** An IANA time zone name the runtime knows (the one BullMQ's cron-parser resolves it with). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}

const timeZone = z.unknown().transform((value, ctx) => {
  if (typeof value !== 'string' || value.trim() === '') return fail(ctx, `must be a time zone name like Europe/Paris or UTC, got ${describe(value)}`)
  if (!isTimeZone(value.trim())) return fail(ctx, `unknown time zone ${JSON.stringify(value)}; use an IANA name like Europe/Paris, America/New_York or UTC`)
  return value.trim()
})

/** A cron pattern as BullMQ reads it (5 fields, or 6 with seconds first), that fires at least once. */
const cronPattern = z.unknown().transform((value, ctx) => {
  if (typeof value !== 'string' || value.trim() === '') return fail(ctx, `must be a cron pattern like "0 3 * * *", got ${describe(value)}`)
  const pattern = value.trim().replace(/\s+/g, ' ')
  const fields = pattern.split(' ').length
  if (fields < 5 || fields > 6)
    return fail(ctx, `must be a cron pattern of 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got ${fields}`)
  try {
    // From a fixed instant (no clock in core): only whether it parses and ever fires matters here.
    CronExpressionParser.parse(pattern, { currentDate: new Date(0), tz: 'UTC' }).next()
  } catch (err) {
    return fail(ctx, `is not a valid cron pattern: ${(err as Error).message}`)
  }
  return pattern
})

const recompute = strict({ campaign: key.optional(), dry_run: z.boolean().default(false) })
const retention = strict({ older_than: duration(SCHEDULE_BOUNDS.olderThan) })

export function scheduleSchema() {
  const base = strict({
    name: key,
    pattern: cronPattern.optional(),
    tz: timeZone.optional(),
    every: duration(SCHEDULE_BOUNDS.every).optional(),
    recompute: z.unknown().optional(),
    retention: z.unknown().optional(),
  })
  return z.unknown().transform((input, ctx): ScheduleDef => {
    const s = within(ctx, base, input)
    if (s === FAILED) return z.NEVER
    const raw = input as Record<string, unknown>
    let ok = true
    if ('pattern' in raw === 'every' in raw) ok = !fail(ctx, 'must have one of pattern (cron, with tz) or every (an interval like 15m), not both')
    if ('tz' in raw && 'every' in raw && !('pattern' in raw)) ok = !fail(ctx, 'applies to pattern only; an every interval has no time zone', ['tz'])
    const kind = kindOf(ctx, raw, ['recompute', 'retention'] as const)
    if (kind === null || !ok) return z.NEVER
    let job: ScheduleJob
    if (kind === 'recompute') {
      // `recompute:` with nothing (YAML null) or {}: every campaign.
      const r = within(ctx, recompute, raw.recompute ?? {})
      if (r === FAILED) return z.NEVER
      job = r.campaign === undefined ? { kind: 'recompute', dryRun: r.dry_run } : { kind: 'recompute', campaign: r.campaign, dryRun: r.dry_run }
    } else {
      if (!isMapping(raw.retention)) return fail(ctx, `must be a mapping {older_than: 400d}, got ${describe(raw.retention)}`, ['retention'])
      const r = within(ctx, retention, raw.retention)
      if (r === FAILED) return z.NEVER
      job = { kind: 'retention', olderThanMs: r.older_than }
    }
    return s.pattern !== undefined ? { name: s.name, pattern: s.pattern, tz: s.tz ?? 'UTC', job } : { name: s.name, everyMs: s.every!, job }
  })
}

/** A schedule's recompute names a campaign of this document (an archived one is never recomputed). */
export function unknownScheduleCampaigns(doc: Record<string, unknown>, campaignKeys: ReadonlySet<string>): Problem[] {
  const problems: Problem[] = []
  rawList(doc, 'schedules').forEach((s, i) => {
    if (!isMapping(s) || !isMapping(s.recompute) || typeof s.recompute.campaign !== 'string') return
    if (!campaignKeys.has(s.recompute.campaign))
      problems.push({
        path: ['schedules', i, 'recompute', 'campaign'],
        message: `unknown campaign ${JSON.stringify(s.recompute.campaign)}; defined campaigns: ${listNames([...campaignKeys])}`,
      })
  })
  return problems
}

/**
 * What a retention age must outlive (docs/operations.md, "Retention"): the
 * longest goal window (R10), journey_ttl (R22) and segment event window
 * (R24) of the document, so an input it deletes can no longer open, convert,
 * complete or count towards anything still open.
 */
export function retentionFloor(campaigns: readonly CampaignDocument[], segments: readonly SegmentDef[]): { ms: number; what: string } {
  let floor = { ms: 0, what: 'nothing' }
  const consider = (ms: number, what: string) => {
    if (ms > floor.ms) floor = { ms, what }
  }
  for (const c of campaigns) {
    if (c.goal) consider(c.goal.withinMs, `the goal window of campaign ${c.key} (within: ${formatDuration(c.goal.withinMs)})`)
    consider(c.journeyTtlMs, `the journey_ttl of campaign ${c.key} (${formatDuration(c.journeyTtlMs)})`)
  }
  const conditions = (list: SegmentDef['conditions'] | undefined, where: string) => {
    for (const cond of list ?? [])
      if (cond.kind === 'event' && cond.withinMs !== undefined)
        consider(cond.withinMs, `the event window of ${where} (within: ${formatDuration(cond.withinMs)})`)
  }
  for (const s of segments) conditions(s.conditions, `segment ${s.key}`)
  for (const c of campaigns) conditions(c.filters?.conditions, `campaign ${c.key}'s filters`)
  return floor
}

/** Retention ages no longer than the floor, each refused with the reason. */
export function shortRetentions(schedules: readonly ScheduleDef[], campaigns: readonly CampaignDocument[], segments: readonly SegmentDef[]): Problem[] {
  const floor = retentionFloor(campaigns, segments)
  const problems: Problem[] = []
  schedules.forEach((s, i) => {
    if (s.job.kind === 'retention' && s.job.olderThanMs <= floor.ms)
      problems.push({
        path: ['schedules', i, 'retention', 'older_than'],
        message: `must be longer than ${floor.what}: events younger than that can still open, convert, complete or count towards something (docs/operations.md, "Retention")`,
      })
  })
  return problems
}
