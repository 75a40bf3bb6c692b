/**
 * Values and conditions (R9, R24): property conditions and filters (with the
 * `{attribute}` / `{trigger}` references each place allows) and the person
 * conditions of segments and audience filters.
 */
import { z } from 'zod'
import { asNumber } from '../operators.ts'
import {
  OPERATORS,
  type Operator,
  type PersonCondition,
  type PersonFilter,
  type PropertyCondition,
  type PropertyFilter,
  type ValueRef,
} from '../model.ts'
import { DURATION_BOUNDS } from './document.ts'
import { segmentKey } from './references.ts'
import { FAILED, describe, duration, fail, isMapping, kindOf, match, oneOf, strict, text, within } from './shared.ts'

/** Which `{attribute}` / `{trigger}` references a condition's value may use. */
export interface RefRules {
  attribute: boolean
  /** null: allowed; otherwise why `{trigger: …}` is not. */
  triggerRefused: () => string | null
}

const onlyInGoals = () => "is only valid in a campaign goal's where"
export const LITERAL_ONLY: RefRules = { attribute: false, triggerRefused: onlyInGoals }
export const NO_TRIGGER: RefRules = { attribute: true, triggerRefused: onlyInGoals }

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

export function propertyFilter(refs: RefRules): z.ZodType<PropertyFilter> {
  return strict({ match, conditions: z.array(propertyCondition(refs)).min(1) })
}

const COUNT_OPS = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte'] as const

export function personCondition() {
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

export function personFilter(): z.ZodType<PersonFilter> {
  return strict({ match, conditions: z.array(personCondition()).min(1) })
}
