import type { Attributes } from './attributes.ts'
import type { PropertyCondition, PropertyFilter, ValueRef } from './model.ts'
import { holds, valueAt } from './operators.ts'

/** What a condition's value may refer to besides a literal (R9). */
export interface FilterContext {
  /** The person's attributes at the event's processing time. */
  attributes: Attributes
  /** The journey's trigger event properties; null when the journey had no trigger event. */
  trigger: Record<string, unknown> | null
}

const NO_CONTEXT: FilterContext = { attributes: {}, trigger: null }

function conditionHolds(c: PropertyCondition, properties: Record<string, unknown>, ctx: FilterContext): boolean {
  const ref: ValueRef | undefined = c.value
  let expected: unknown
  if (ref === undefined) expected = undefined
  else if ('literal' in ref) expected = ref.literal
  else if ('attribute' in ref) expected = valueAt(ctx.attributes, ref.attribute)
  else {
    // R9: a trigger reference is false when the journey had no trigger event.
    if (ctx.trigger === null) return false
    expected = valueAt(ctx.trigger, ref.trigger)
  }
  return holds(c.op, valueAt(properties, c.property), expected)
}

/** R9: `match: all` needs every condition, `match: any` at least one; no conditions match. */
export function matchesFilter(
  filter: PropertyFilter | undefined,
  properties: Record<string, unknown>,
  ctx: FilterContext = NO_CONTEXT,
): boolean {
  if (!filter || filter.conditions.length === 0) return true
  return filter.match === 'all'
    ? filter.conditions.every((c) => conditionHolds(c, properties, ctx))
    : filter.conditions.some((c) => conditionHolds(c, properties, ctx))
}
