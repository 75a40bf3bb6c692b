/**
 * Campaigns: trigger, audience filters, goal (R9, R10, R13) and exit setting,
 * and the check that each `campaign_id` value names one campaign (R4).
 */
import { z } from 'zod'
import type { ExitSetting, Goal, Trigger } from '../model.ts'
import { NO_TRIGGER, personFilter, propertyFilter, type RefRules } from './conditions.ts'
import { DEFAULT_JOURNEY_TTL_MS, DURATION_BOUNDS, type CampaignDocument } from './document.ts'
import { scope, segmentKey, type TriggerKind } from './references.ts'
import {
  FAILED,
  describe,
  duration,
  fail,
  isMapping,
  isoInstant,
  key,
  kindOf,
  oneOf,
  rawKeyOf,
  rawList,
  strict,
  text,
  within,
  type Problem,
} from './shared.ts'

function triggerSchema() {
  const event = strict({ event: text, where: propertyFilter(NO_TRIGGER).optional() })
  const segment = strict({ segment: segmentKey() })
  return z.unknown().transform((input, ctx): Trigger => {
    switch (kindOf(ctx, input, ['event', 'segment'] as const)) {
      case 'event': {
        const t = within(ctx, event, input)
        if (t === FAILED) return z.NEVER
        return t.where ? { kind: 'event', event: t.event, where: t.where } : { kind: 'event', event: t.event }
      }
      case 'segment': {
        const t = within(ctx, segment, input)
        return t === FAILED ? z.NEVER : { kind: 'segment', segment: t.segment }
      }
      default:
        return z.NEVER
    }
  })
}

const AFTER = ['delivered', 'opened', 'clicked'] as const

function goalSchema() {
  // R9: {trigger: …} reads the journey's trigger event, so it needs one.
  const goalRefs: RefRules = {
    attribute: true,
    triggerRefused: () =>
      scope.trigger === 'event'
        ? null
        : `needs the campaign to have an event trigger; ${scope.trigger === 'none' ? 'this campaign has no trigger' : "this campaign's trigger is a segment"}`,
  }
  const common = {
    within: duration(DURATION_BOUNDS.goalWithin),
    after: oneOf(AFTER).default('delivered'),
    effective_from: isoInstant.optional(),
  }
  const event = strict({ event: text, where: propertyFilter(goalRefs).optional(), value: text.optional(), ...common })
  const segment = strict({ segment: segmentKey(), on: oneOf(['join', 'leave']).default('join'), ...common })
  return z.unknown().transform((input, ctx): { goal: Goal; effectiveFrom?: string } => {
    const kind = kindOf(ctx, input, ['event', 'segment'] as const)
    if (kind === null) return z.NEVER
    const raw = { ...(input as Record<string, unknown>) }
    // Keys of the other kind get a message that says so, not "unknown key".
    const foreign = kind === 'event' ? ['on'] : ['where', 'value']
    let misplaced = false
    for (const k of foreign)
      if (k in raw) {
        misplaced = true
        fail(ctx, `only ${kind === 'event' ? 'segment' : 'event'} goals take "${k}"`, [k])
        delete raw[k]
      }
    if (kind === 'event') {
      const g = within(ctx, event, raw)
      if (g === FAILED || misplaced) return z.NEVER
      const goal: Goal = { kind: 'event', event: g.event, withinMs: g.within, after: g.after }
      if (g.where) goal.where = g.where
      if (g.value !== undefined) goal.value = g.value
      return g.effective_from === undefined ? { goal } : { goal, effectiveFrom: g.effective_from }
    }
    const g = within(ctx, segment, raw)
    if (g === FAILED || misplaced) return z.NEVER
    const goal: Goal = { kind: 'segment', segment: g.segment, on: g.on, withinMs: g.within, after: g.after }
    return g.effective_from === undefined ? { goal } : { goal, effectiveFrom: g.effective_from }
  })
}

const EXITS = ['on_unmatch', 'on_goal', 'on_goal_or_unmatch', 'never'] as const satisfies readonly ExitSetting[]

const externalId = z.unknown().transform((value, ctx) => {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  if (typeof value === 'string' && value.trim() !== '') return value.trim()
  return fail(ctx, `must be a non-empty string (or a number), got ${describe(value)}`)
})

export function campaignSchema() {
  return strict({
    key,
    name: text.optional(),
    external_ids: z.array(externalId).nullish(),
    trigger: triggerSchema().optional(),
    filters: personFilter().optional(),
    goal: goalSchema().optional(),
    exit: oneOf(EXITS, 'exit setting').default('on_unmatch'),
    webhook_conversions: z.boolean().default(false),
    journey_ttl: duration(DURATION_BOUNDS.journeyTtl).optional(),
  }).transform((c): CampaignDocument => {
    const out: CampaignDocument = {
      key: c.key,
      name: c.name ?? c.key,
      externalIds: [...new Set(c.external_ids ?? [])],
      exit: c.exit,
      webhookConversions: c.webhook_conversions,
      journeyTtlMs: c.journey_ttl ?? DEFAULT_JOURNEY_TTL_MS,
    }
    if (c.trigger) out.trigger = c.trigger
    if (c.filters) out.filters = c.filters
    if (c.goal) out.goal = c.goal.goal
    if (c.goal?.effectiveFrom) out.effectiveFrom = c.goal.effectiveFrom
    return out
  })
}

/** R4 matches `campaign_id` against keys and external ids: each value must name one campaign. */
export function ambiguousCampaignIds(doc: Record<string, unknown>): Problem[] {
  const campaigns = rawList(doc, 'campaigns')
  const owner = new Map<string, string>()
  campaigns.forEach((c) => {
    const k = rawKeyOf(c)
    if (k !== null && !owner.has(k)) owner.set(k, k)
  })
  const problems: Problem[] = []
  campaigns.forEach((c, i) => {
    const k = rawKeyOf(c)
    if (k === null || !isMapping(c) || !Array.isArray(c.external_ids)) return
    c.external_ids.forEach((id, j) => {
      const value = typeof id === 'number' && Number.isFinite(id) ? String(id) : typeof id === 'string' ? id.trim() : null
      if (!value) return
      const other = owner.get(value)
      if (other !== undefined && other !== k)
        problems.push({
          path: ['campaigns', i, 'external_ids', j],
          message: `${JSON.stringify(value)} already names campaign ${other}; a campaign_id must identify one campaign`,
        })
      else owner.set(value, k)
    })
  })
  return problems
}

/** The kind of a raw campaign's trigger, read before its goal so `{trigger: …}` can be checked (R9). */
export function triggerKindOf(campaign: unknown): TriggerKind {
  if (!isMapping(campaign) || !isMapping(campaign.trigger)) return 'none'
  if ('event' in campaign.trigger && !('segment' in campaign.trigger)) return 'event'
  return 'segment' in campaign.trigger && !('event' in campaign.trigger) ? 'segment' : 'none'
}
