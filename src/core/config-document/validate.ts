/**
 * The configuration document (CONTRACT.md, "Configuration document"):
 * validation of an already-parsed YAML/JSON value into the normalised types of
 * model.ts. Pure: no I/O, no clock, no environment.
 *
 * Every problem is reported, each with its path (`campaigns[2].goal.within:
 * must be at most 90d`), so one edit fixes them all. Choices the contract
 * leaves open (defaults, bounds, status names) are in docs/configuration.md.
 */
import { z } from 'zod'
import { ambiguousCampaignIds, campaignSchema, triggerKindOf } from './campaigns.ts'
import { deliveryEventSchema, duplicateEvents } from './delivery-events.ts'
import type { ConfigDocument, ValidationResult } from './document.ts'
import { scope } from './references.ts'
import { scheduleSchema, shortRetentions, unknownScheduleCampaigns } from './schedules.ts'
import { segmentCycles, segmentSchema } from './segments.ts'
import { duplicateWebhookNames, webhookSchema } from './webhooks.ts'
import { isStorableText, UNSTORABLE_TEXT } from '../storable.ts'
import {
  FAILED,
  describe,
  formatPath,
  isMapping,
  rawKeyOf,
  rawList,
  run,
  strict,
  within,
  type Outcome,
  type Problem,
} from './shared.ts'

const CAMPAIGN = campaignSchema()
const DOCUMENT = strict({
  segments: z.array(segmentSchema()).nullish(),
  campaigns: z
    .array(
      z.unknown().transform((raw, ctx) => {
        scope.trigger = triggerKindOf(raw)
        const c = within(ctx, CAMPAIGN, raw)
        return c === FAILED ? z.NEVER : c
      }),
    )
    .nullish(),
  delivery_events: z.array(deliveryEventSchema).nullish(),
  schedules: z.array(scheduleSchema()).nullish(),
  webhooks: z.array(webhookSchema).nullish(),
})

/** Each key once in its list: a second entry with it is a problem at its `key` (a schedule's `name`). */
function duplicateKeys(doc: Record<string, unknown>, list: string, field: 'key' | 'name' = 'key'): Problem[] {
  const first = new Map<string, number>()
  const problems: Problem[] = []
  rawList(doc, list).forEach((item, i) => {
    const k = rawKeyOf(isMapping(item) ? { key: item[field] } : item)
    if (k === null) return
    const seen = first.get(k)
    if (seen === undefined) first.set(k, i)
    else problems.push({ path: [list, i, field], message: `duplicate ${field} ${JSON.stringify(k)} (also ${list}[${seen}])` })
  })
  return problems
}

/** `__proto__` keys (JSON.parse and YAML make them own keys) are unknown keys too; zod skips them. */
/**
 * Problems anywhere in the document, whatever the schema says of the place:
 * `__proto__` keys, and keys or strings Postgres cannot store (the document is
 * kept as jsonb, and its names and events as text).
 */
function documentWideProblems(input: unknown): Problem[] {
  const problems: Problem[] = []
  const stack: Array<{ node: unknown; path: PropertyKey[] }> = [{ node: input, path: [] }]
  while (stack.length > 0) {
    const { node, path } = stack.pop()!
    if (typeof node === 'string' && !isStorableText(node)) problems.push({ path, message: UNSTORABLE_TEXT })
    if (node === null || typeof node !== 'object') continue
    if (Object.prototype.hasOwnProperty.call(node, '__proto__')) problems.push({ path: [...path, '__proto__'], message: 'unknown key' })
    if (Array.isArray(node)) node.forEach((child, i) => stack.push({ node: child, path: [...path, i] }))
    else
      for (const [k, child] of Object.entries(node)) {
        if (k === '__proto__') continue
        if (!isStorableText(k)) problems.push({ path: [...path, k], message: `key ${UNSTORABLE_TEXT}` })
        stack.push({ node: child, path: [...path, k] })
      }
  }
  return problems
}

const TOP_ORDER = ['segments', 'campaigns', 'delivery_events', 'schedules', 'webhooks']

function order(a: Problem, b: Problem): number {
  const rank = (p: Problem) => (p.path.length === 0 ? -1 : TOP_ORDER.indexOf(String(p.path[0])))
  const index = (p: Problem) => (typeof p.path[1] === 'number' ? p.path[1] : -1)
  return rank(a) - rank(b) || index(a) - index(b)
}

/**
 * Validates an already-parsed document (YAML or JSON). `null`/`undefined` (an
 * empty file) is the empty document, which configures nothing (CONTRACT.md).
 */
export function validateConfigDocument(input: unknown): ValidationResult {
  if (input === null || input === undefined) return { ok: true, document: { segments: [], campaigns: [], deliveryEvents: [] } }
  if (!isMapping(input))
    return {
      ok: false,
      errors: [`document: must be a mapping with segments, campaigns and delivery_events (all optional), got ${describe(input)}`],
    }
  scope.segmentKeys = new Set(rawList(input, 'segments').map(rawKeyOf).filter((k): k is string => k !== null))
  let outcome: Outcome<z.output<typeof DOCUMENT>>
  try {
    outcome = run(DOCUMENT, input)
  } finally {
    scope.segmentKeys = new Set()
    scope.trigger = 'none'
  }
  const problems = [
    ...(outcome.ok ? [] : outcome.problems),
    ...documentWideProblems(input),
    ...duplicateKeys(input, 'segments'),
    ...duplicateKeys(input, 'campaigns'),
    ...ambiguousCampaignIds(input),
    ...segmentCycles(input),
    ...duplicateEvents(input),
    ...duplicateKeys(input, 'schedules', 'name'),
    ...duplicateWebhookNames(input),
    ...unknownScheduleCampaigns(input, new Set(rawList(input, 'campaigns').map(rawKeyOf).filter((k): k is string => k !== null))),
  ]
  // Retention ages against the windows they must outlive: only once those are known.
  if (outcome.ok) problems.push(...shortRetentions(outcome.data.schedules ?? [], outcome.data.campaigns ?? [], outcome.data.segments ?? []))
  if (problems.length > 0 || !outcome.ok)
    return { ok: false, errors: problems.sort(order).map((p) => `${formatPath(p.path)}: ${p.message}`) }
  const document: ConfigDocument = {
    segments: outcome.data.segments ?? [],
    campaigns: outcome.data.campaigns ?? [],
    deliveryEvents: outcome.data.delivery_events ?? [],
  }
  if (outcome.data.schedules) document.schedules = outcome.data.schedules
  if (outcome.data.webhooks) document.webhooks = outcome.data.webhooks
  return { ok: true, document }
}
