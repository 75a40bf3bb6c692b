import type { Operator } from './model.ts'

/**
 * Condition operators (R9, CONTRACT.md "Operators"). Numeric operators compare
 * as numbers, a numeric string counting as its number; eq/neq compare
 * numerically when both sides are numeric and otherwise as case-sensitive
 * strings; a missing (or null) value is false for every operator but
 * not_exists, neq, not_contains and not_in.
 */

const NUMERIC = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/

/** A number, or a string that is exactly a number; else null. */
export function asNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null
  if (typeof value === 'string' && NUMERIC.test(value)) {
    const n = Number(value)
    return Number.isFinite(n) ? n : null
  }
  return null
}

function asText(value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'object' && value !== null) return JSON.stringify(value)
  return String(value)
}

function equals(actual: unknown, expected: unknown): boolean {
  const a = asNumber(actual)
  const b = asNumber(expected)
  if (a !== null && b !== null) return a === b
  return asText(actual) === asText(expected)
}

const isMissing = (value: unknown) => value === undefined || value === null

/** Does `actual op expected` hold? `expected` is already resolved (literal, attribute or trigger value). */
export function holds(op: Operator, actual: unknown, expected?: unknown): boolean {
  if (op === 'exists') return !isMissing(actual)
  if (op === 'not_exists') return isMissing(actual)
  if (isMissing(actual)) return op === 'neq' || op === 'not_contains' || op === 'not_in'
  switch (op) {
    case 'eq':
      return !isMissing(expected) && equals(actual, expected)
    case 'neq':
      return isMissing(expected) || !equals(actual, expected)
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      const a = asNumber(actual)
      const b = asNumber(expected)
      if (a === null || b === null) return false
      return op === 'gt' ? a > b : op === 'gte' ? a >= b : op === 'lt' ? a < b : a <= b
    }
    case 'contains':
    case 'not_contains': {
      if (isMissing(expected)) return op === 'not_contains'
      // A list contains an element equal to the value; anything else is a substring test.
      const found = Array.isArray(actual)
        ? actual.some((item) => equals(item, expected))
        : asText(actual).includes(asText(expected))
      return op === 'contains' ? found : !found
    }
    case 'starts_with':
      return !isMissing(expected) && asText(actual).startsWith(asText(expected))
    case 'ends_with':
      return !isMissing(expected) && asText(actual).endsWith(asText(expected))
    case 'in':
    case 'not_in': {
      const list = Array.isArray(expected) ? expected : [expected]
      const found = list.some((item) => !isMissing(item) && equals(actual, item))
      return op === 'in' ? found : !found
    }
  }
}

/** The value at a dot path (`address.city`); a key that itself contains dots is found too. */
export function valueAt(source: Record<string, unknown> | null | undefined, path: string): unknown {
  if (!source) return undefined
  if (Object.hasOwn(source, path)) return source[path]
  let current: unknown = source
  for (const part of path.split('.')) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, part)) return undefined
    current = (current as Record<string, unknown>)[part]
  }
  return current
}
