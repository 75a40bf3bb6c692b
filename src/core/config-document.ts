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
import { DAY_MS, formatDuration, parseDuration } from './duration.ts'
import { CHANNELS, type Step } from './lifecycle.ts'
import { asNumber } from './operators.ts'
import {
  OPERATORS,
  type CampaignDef,
  type DeliveryEventDef,
  type ExitSetting,
  type Goal,
  type GoalAfter,
  type Operator,
  type PersonCondition,
  type PersonFilter,
  type PropertyCondition,
  type PropertyFilter,
  type SegmentDef,
  type Trigger,
  type ValueRef,
} from './model.ts'

/** A campaign as the document states it: its one goal, not the version history (R13). */
export interface CampaignDocument extends Omit<CampaignDef, 'goals'> {
  goal?: Goal
  /** The goal's `effective_from`, normalised to an ISO instant. */
  effectiveFrom?: string
}

export interface ConfigDocument {
  segments: SegmentDef[]
  campaigns: CampaignDocument[]
  deliveryEvents: DeliveryEventDef[]
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

/** `status` names accepted in `delivery_events`, and the lifecycle step each records (R4, R5). */
export const DELIVERY_STATUSES: Readonly<Record<string, Step>> = {
  drafted: 'drafted',
  attempted: 'attempted',
  sent: 'sent',
  delivered: 'delivered',
  opened: 'opened',
  clicked: 'clicked',
  // R5's revocations, by any of their names.
  revoked: 'revoked',
  bounced: 'revoked',
  failed: 'revoked',
  suppressed: 'revoked',
  dropped: 'revoked',
  // Stored and counted, no step (like `Email Unsubscribed`).
  recorded: 'recorded',
}

/** JSON with object keys sorted: equal for equal content, whatever the key order (goal comparison, R13). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )
}

// ---------------------------------------------------------------------------
// Messages

type Path = ReadonlyArray<PropertyKey>

export function formatPath(path: Path): string {
  let out = ''
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`
  return out === '' ? 'document' : out
}

function describe(input: unknown): string {
  if (input === null) return 'null'
  if (Array.isArray(input)) return 'a list'
  if (typeof input === 'object') return 'a mapping'
  if (typeof input === 'string') return JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)
  return String(input)
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = row[j]
      row[j] = next
    }
  }
  return row[b.length]
}

function suggestion(word: string, candidates: readonly string[]): string {
  const close = candidates
    .map((c) => ({ c, d: editDistance(word.toLowerCase(), c.toLowerCase()) }))
    .filter(({ c, d }) => d <= Math.max(1, Math.floor(c.length / 3)))
    .sort((x, y) => x.d - y.d)[0]
  return close ? `did you mean "${close.c}"?` : `use one of ${candidates.join(', ')}`
}

function listNames(names: readonly string[]): string {
  return names.length === 0 ? 'none' : names.length > 10 ? `${names.slice(0, 10).join(', ')}, …` : names.join(', ')
}

/** Messages for zod's own issues, in the document's vocabulary. */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required'
      return `must be ${TYPE_NAMES[iss.expected] ?? iss.expected}, got ${describe(iss.input)}`
    case 'too_small':
      return iss.origin === 'array' || iss.origin === 'string' ? 'must not be empty' : `must be at least ${iss.minimum}`
    case 'too_big':
      return `must be at most ${iss.maximum}`
    default:
      return undefined
  }
}

interface Problem {
  path: PropertyKey[]
  message: string
}

type Outcome<T> = { ok: true; data: T } | { ok: false; problems: Problem[] }

function run<T>(schema: z.ZodType<T>, value: unknown): Outcome<T> {
  const result = schema.safeParse(value, { error: errorMap })
  if (result.success) return { ok: true, data: result.data }
  return {
    ok: false,
    problems: result.error.issues.map((iss) => {
      const path = [...iss.path]
      const params = (iss as { params?: { unknownKeyOf?: string[] } }).params
      if (params?.unknownKeyOf) {
        const key = String(path[path.length - 1])
        return { path, message: `unknown key; ${suggestion(key, params.unknownKeyOf)}` }
      }
      return { path, message: iss.message }
    }),
  }
}

const FAILED: unique symbol = Symbol('failed')

/** Runs `schema` inside a transform, forwarding its problems at their relative paths. */
function within<T>(ctx: z.core.$RefinementCtx, schema: z.ZodType<T>, value: unknown): T | typeof FAILED {
  const outcome = run(schema, value)
  if (outcome.ok) return outcome.data
  for (const p of outcome.problems) ctx.addIssue({ code: 'custom', message: p.message, path: p.path })
  return FAILED
}

function fail(ctx: z.core.$RefinementCtx, message: string, path: PropertyKey[] = []): typeof z.NEVER {
  ctx.addIssue({ code: 'custom', message, path })
  return z.NEVER
}

// ---------------------------------------------------------------------------
// Building blocks

/** An object that rejects keys it does not know, each at its own path. */
function strict<S extends z.core.$ZodLooseShape>(shape: S) {
  const allowed = Object.keys(shape)
  return z.object(shape).catchall(
    z.unknown().transform((_v, ctx) => {
      ctx.addIssue({ code: 'custom', message: 'unknown key', params: { unknownKeyOf: allowed } })
      return z.NEVER
    }),
  )
}

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function oneOf<const T extends readonly [string, ...string[]]>(values: T, what = 'value') {
  return z.enum(values, {
    error: (iss) =>
      iss.input === undefined
        ? 'is required'
        : typeof iss.input === 'string'
        ? `unknown ${what} ${JSON.stringify(iss.input)}; ${suggestion(iss.input, values)}`
        : `must be one of ${values.join(', ')}, got ${describe(iss.input)}`,
  })
}

const text = z.string().trim().min(1)
const key = z.string().regex(KEY_PATTERN, 'must be 1-64 characters of a-z, 0-9, _ and -')

function duration(bounds: { min: number; max: number }) {
  return z.unknown().transform((value, ctx) => {
    if (value === undefined) return fail(ctx, 'is required')
    const ms = parseDuration(value)
    if (ms === null) return fail(ctx, `must be a duration like 30m, 12h or 7d (an integer and one of s, m, h, d), got ${describe(value)}`)
    if (ms < bounds.min) return fail(ctx, `must be at least ${formatDuration(bounds.min)}`)
    if (ms > bounds.max) return fail(ctx, `must be at most ${formatDuration(bounds.max)}`)
    return ms
  })
}

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)$/

const isoInstant = z.unknown().transform((value, ctx) => {
  if (value instanceof Date && Number.isFinite(value.getTime())) return value.toISOString()
  const ms = typeof value === 'string' && ISO_DATE_TIME.test(value.trim()) ? Date.parse(value.trim()) : NaN
  if (!Number.isFinite(ms))
    return fail(ctx, `must be an ISO 8601 date-time with a time zone, like 2026-01-01T00:00:00Z, got ${describe(value)}`)
  return new Date(ms).toISOString()
})

const match = oneOf(['all', 'any']).default('all')

// ---------------------------------------------------------------------------
// Values and conditions (R9, R24)

/** Which `{attribute}` / `{trigger}` references a condition's value may use. */
interface RefRules {
  attribute: boolean
  /** null: allowed; otherwise why `{trigger: …}` is not. */
  triggerRefused: () => string | null
}

const onlyInGoals = () => "is only valid in a campaign goal's where"
const LITERAL_ONLY: RefRules = { attribute: false, triggerRefused: onlyInGoals }
const NO_TRIGGER: RefRules = { attribute: true, triggerRefused: onlyInGoals }

const NUMERIC_OPS = ['gt', 'gte', 'lt', 'lte'] as const
const isScalar = (v: unknown) => typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
// The same test the rules apply at run time, so a condition that validates can hold.
const isNumeric = (v: unknown) => asNumber(v) !== null

type Checked = { ok: true; value?: ValueRef } | { ok: false }

/** Checks a condition's `value` against its operator; problems are added at `value`. */
function checkValue(ctx: z.core.$RefinementCtx, op: Operator, present: boolean, value: unknown, refs: RefRules): Checked {
  const bad = (message: string, path: PropertyKey[] = ['value']): Checked => {
    fail(ctx, message, path)
    return { ok: false }
  }
  if (op === 'exists' || op === 'not_exists') return present ? bad(`op ${op} takes no value; remove it`) : { ok: true }
  if (!present) return bad(`is required for op ${op}`)
  if (isMapping(value) && ('attribute' in value || 'trigger' in value)) {
    const kinds = Object.keys(value)
    const kind = kinds[0]
    if (kinds.length !== 1) return bad('a reference is {attribute: name} or {trigger: name}, with nothing else')
    const name = value[kind]
    if (typeof name !== 'string' || name.trim() === '') return bad(`{${kind}: …} must name a property (a non-empty string)`, ['value', kind])
    if (kind === 'attribute')
      return refs.attribute
        ? { ok: true, value: { attribute: name } }
        : bad('must be a literal value: segment and audience conditions compare with literals (R24)')
    const refused = refs.triggerRefused()
    if (refused !== null) return bad(`{trigger: …} ${refused}`)
    return { ok: true, value: { trigger: name } }
  }
  if (op === 'in' || op === 'not_in') {
    if (!Array.isArray(value)) return bad(`must be a list for op ${op}, got ${describe(value)}`)
    if (value.length === 0) return bad(`must not be empty for op ${op}`)
    let ok = true
    value.forEach((item, i) => {
      if (!isScalar(item)) ok = bad(`must be a string, number or boolean, got ${describe(item)}`, ['value', i]).ok
    })
    return ok ? { ok: true, value: { literal: value } } : { ok: false }
  }
  if ((NUMERIC_OPS as readonly string[]).includes(op))
    return isNumeric(value)
      ? { ok: true, value: { literal: value } }
      : bad(`must be a number (or a numeric string) for op ${op}, got ${describe(value)}`)
  if (Array.isArray(value)) return bad(`must be a single value for op ${op}; use op in for a list`)
  if (!isScalar(value)) return bad(`must be a string, number or boolean, got ${describe(value)}`)
  return { ok: true, value: { literal: value } }
}

const operator = oneOf(OPERATORS, 'operator')

function propertyCondition(refs: RefRules) {
  const base = strict({ property: text, op: operator, value: z.unknown().optional() })
  return z.unknown().transform((input, ctx): PropertyCondition => {
    const parsed = within(ctx, base, input)
    if (parsed === FAILED) return z.NEVER
    const raw = input as Record<string, unknown>
    const checked = checkValue(ctx, parsed.op, 'value' in raw, raw.value, refs)
    if (!checked.ok) return z.NEVER
    return checked.value === undefined ? { property: parsed.property, op: parsed.op } : { property: parsed.property, op: parsed.op, value: checked.value }
  })
}

function propertyFilter(refs: RefRules): z.ZodType<PropertyFilter> {
  return strict({ match, conditions: z.array(propertyCondition(refs)).min(1) })
}

type TriggerKind = 'event' | 'segment' | 'none'

/**
 * What the schemas need to know about the rest of the document: set by
 * validateConfigDocument (and, for `trigger`, per campaign) for the duration of
 * one synchronous parse. The schemas are built once: zod compiles each.
 */
const scope: { segmentKeys: ReadonlySet<string>; trigger: TriggerKind } = { segmentKeys: new Set(), trigger: 'none' }

function segmentKey() {
  return z.unknown().transform((value, ctx) => {
    const parsed = within(ctx, key, value)
    if (parsed === FAILED) return z.NEVER
    if (!scope.segmentKeys.has(parsed))
      return fail(ctx, `unknown segment ${JSON.stringify(parsed)}; defined segments: ${listNames([...scope.segmentKeys])}`)
    return parsed
  })
}

/** Exactly one of `kinds` present: which one, or a problem. */
function kindOf<K extends string>(ctx: z.core.$RefinementCtx, input: unknown, kinds: readonly K[]): K | null {
  if (!isMapping(input)) {
    fail(ctx, `must be a mapping with one of ${kinds.join(', ')}, got ${describe(input)}`)
    return null
  }
  const found = kinds.filter((k) => k in input)
  if (found.length === 1) return found[0]
  fail(ctx, found.length === 0 ? `must have one of ${kinds.join(', ')}` : `must have only one of ${kinds.join(', ')} (found ${found.join(' and ')})`)
  return null
}

const COUNT_OPS = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte'] as const

function personCondition() {
  const attribute = strict({ attribute: text, op: operator, value: z.unknown().optional() })
  const event = strict({
    event: text,
    // R24: segment conditions compare with literal values only.
    where: propertyFilter(LITERAL_ONLY).optional(),
    count: strict({
      op: oneOf(COUNT_OPS, 'count operator'),
      value: z.number().int('must be a non-negative integer').min(0, 'must be a non-negative integer'),
    }).optional(),
    within: duration(DURATION_BOUNDS.segmentEventWithin).optional(),
  })
  const segment = strict({ segment: segmentKey(), op: oneOf(['in', 'not_in'], 'segment operator').default('in') })
  return z.unknown().transform((input, ctx): PersonCondition => {
    switch (kindOf(ctx, input, ['attribute', 'event', 'segment'] as const)) {
      case 'attribute': {
        const c = within(ctx, attribute, input)
        if (c === FAILED) return z.NEVER
        const raw = input as Record<string, unknown>
        const checked = checkValue(ctx, c.op, 'value' in raw, raw.value, LITERAL_ONLY)
        if (!checked.ok) return z.NEVER
        const out: PersonCondition = { kind: 'attribute', attribute: c.attribute, op: c.op }
        if (checked.value && 'literal' in checked.value) out.value = checked.value.literal
        return out
      }
      case 'event': {
        const c = within(ctx, event, input)
        if (c === FAILED) return z.NEVER
        const out: PersonCondition = { kind: 'event', event: c.event, count: c.count ?? { op: 'gte', value: 1 } }
        if (c.where) out.where = c.where
        if (c.within !== undefined) out.withinMs = c.within
        return out
      }
      case 'segment': {
        const c = within(ctx, segment, input)
        return c === FAILED ? z.NEVER : { kind: 'segment', segment: c.segment, op: c.op }
      }
      default:
        return z.NEVER
    }
  })
}

function personFilter(): z.ZodType<PersonFilter> {
  return strict({ match, conditions: z.array(personCondition()).min(1) })
}

// ---------------------------------------------------------------------------
// Segments, campaigns, delivery events

function segmentSchema() {
  return strict({ key, name: text.optional(), match, conditions: z.array(personCondition()).min(1) }).transform(
    (s): SegmentDef => ({ key: s.key, name: s.name ?? s.key, match: s.match, conditions: s.conditions }),
  )
}

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

function campaignSchema() {
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

const STATUS_NAMES = Object.keys(DELIVERY_STATUSES) as [string, ...string[]]

const deliveryEventSchema = strict({
  event: text,
  channel: oneOf(CHANNELS, 'channel'),
  status: oneOf(STATUS_NAMES, 'status'),
}).transform((d): DeliveryEventDef => ({ event: d.event, channel: d.channel, step: DELIVERY_STATUSES[d.status] }))

// ---------------------------------------------------------------------------
// Checks across entries, on the raw document so they run whatever else fails

const rawList = (doc: Record<string, unknown>, name: string): unknown[] => (Array.isArray(doc[name]) ? (doc[name] as unknown[]) : [])
const rawKeyOf = (item: unknown): string | null =>
  isMapping(item) && typeof item.key === 'string' && KEY_PATTERN.test(item.key) ? item.key : null

function duplicateKeys(doc: Record<string, unknown>, list: string): Problem[] {
  const first = new Map<string, number>()
  const problems: Problem[] = []
  rawList(doc, list).forEach((item, i) => {
    const k = rawKeyOf(item)
    if (k === null) return
    const seen = first.get(k)
    if (seen === undefined) first.set(k, i)
    else problems.push({ path: [list, i, 'key'], message: `duplicate key ${JSON.stringify(k)} (also ${list}[${seen}])` })
  })
  return problems
}

/** R4 matches `campaign_id` against keys and external ids: each value must name one campaign. */
function ambiguousCampaignIds(doc: Record<string, unknown>): Problem[] {
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

/** R24: segments reference segments without cycles. Each cycle is named once, where it starts. */
function segmentCycles(doc: Record<string, unknown>): Problem[] {
  const edges = new Map<string, Array<{ to: string; path: PropertyKey[] }>>()
  rawList(doc, 'segments').forEach((s, i) => {
    const k = rawKeyOf(s)
    if (k === null || edges.has(k)) return
    const list: Array<{ to: string; path: PropertyKey[] }> = []
    if (isMapping(s) && Array.isArray(s.conditions))
      s.conditions.forEach((c, j) => {
        if (isMapping(c) && typeof c.segment === 'string') list.push({ to: c.segment, path: ['segments', i, 'conditions', j, 'segment'] })
      })
    edges.set(k, list)
  })
  const state = new Map<string, 'open' | 'done'>()
  const stack: Array<{ node: string; via: PropertyKey[] | null }> = []
  const problems: Problem[] = []
  const visit = (node: string) => {
    state.set(node, 'open')
    for (const edge of edges.get(node) ?? []) {
      stack.push({ node, via: edge.path })
      const s = state.get(edge.to)
      if (s === 'open') {
        const start = stack.findIndex((f) => f.node === edge.to)
        const names = [...stack.slice(start).map((f) => f.node), edge.to]
        problems.push({ path: stack[start].via!, message: `cycle ${names.join(' -> ')}` })
      } else if (s === undefined && edges.has(edge.to)) visit(edge.to)
      stack.pop()
    }
    state.set(node, 'done')
  }
  for (const node of edges.keys()) if (!state.has(node)) visit(node)
  return problems
}

function triggerKindOf(campaign: unknown): TriggerKind {
  if (!isMapping(campaign) || !isMapping(campaign.trigger)) return 'none'
  if ('event' in campaign.trigger && !('segment' in campaign.trigger)) return 'event'
  return 'segment' in campaign.trigger && !('event' in campaign.trigger) ? 'segment' : 'none'
}

// ---------------------------------------------------------------------------

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
})

/** `__proto__` keys (JSON.parse and YAML make them own keys) are unknown keys too; zod skips them. */
function prototypeKeys(input: unknown): Problem[] {
  const problems: Problem[] = []
  const stack: Array<{ node: unknown; path: PropertyKey[] }> = [{ node: input, path: [] }]
  while (stack.length > 0) {
    const { node, path } = stack.pop()!
    if (node === null || typeof node !== 'object') continue
    if (Object.prototype.hasOwnProperty.call(node, '__proto__')) problems.push({ path: [...path, '__proto__'], message: 'unknown key' })
    if (Array.isArray(node)) node.forEach((child, i) => stack.push({ node: child, path: [...path, i] }))
    else for (const [k, child] of Object.entries(node)) if (k !== '__proto__') stack.push({ node: child, path: [...path, k] })
  }
  return problems
}

const TOP_ORDER = ['segments', 'campaigns', 'delivery_events']

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
    ...prototypeKeys(input),
    ...duplicateKeys(input, 'segments'),
    ...duplicateKeys(input, 'campaigns'),
    ...ambiguousCampaignIds(input),
    ...segmentCycles(input),
  ]
  const events = new Map<string, number>()
  rawList(input, 'delivery_events').forEach((d, i) => {
    if (!isMapping(d) || typeof d.event !== 'string') return
    const seen = events.get(d.event.trim())
    if (seen === undefined) events.set(d.event.trim(), i)
    else problems.push({ path: ['delivery_events', i, 'event'], message: `duplicate event ${JSON.stringify(d.event)} (also delivery_events[${seen}])` })
  })
  if (problems.length > 0 || !outcome.ok)
    return { ok: false, errors: problems.sort(order).map((p) => `${formatPath(p.path)}: ${p.message}`) }
  return {
    ok: true,
    document: {
      segments: outcome.data.segments ?? [],
      campaigns: outcome.data.campaigns ?? [],
      deliveryEvents: outcome.data.delivery_events ?? [],
    },
  }
}
