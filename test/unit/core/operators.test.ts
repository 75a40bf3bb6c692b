import { describe, expect, it } from 'vitest'
import { OPERATORS, type Operator } from '../../../src/core/model.ts'
import { asNumber, holds, valueAt } from '../../../src/core/operators.ts'

type Row = [op: Operator, actual: unknown, expected: unknown, result: boolean]

const show = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v))
const table = (rows: Row[]) => rows.map(([op, actual, expected, result]) => ({ op, actual, expected, result, a: show(actual), e: show(expected) }))

describe('R9 operators (CONTRACT.md "Operators")', () => {
  it.each(
    table([
      ['eq', '10', 10, true],
      ['eq', 10, '10', true],
      ['eq', '10.0', 10, true],
      ['eq', '007', '7', true],
      ['eq', 10, 11, false],
      ['eq', 'abc', 'abc', true],
      ['eq', 'abc', 'ABC', false],
      ['eq', 'US', 'us', false],
      ['eq', '10 ', 10, false],
      ['eq', true, 'true', true],
      ['eq', 'abc', 0, false],
      ['neq', '10', 10, false],
      ['neq', 'abc', 'ABC', true],
      ['neq', 10, 11, true],
    ]),
  )('R9: eq/neq: $a $op $e is $result (numbers numerically, everything else as case-sensitive strings)', ({ op, actual, expected, result }) => {
    expect(holds(op, actual, expected)).toBe(result)
  })

  it.each(
    table([
      ['gt', '9.99', 9, true],
      ['gt', 10, '9.99', true],
      ['gt', 9, 9, false],
      ['gte', 9, 9, true],
      ['gte', '9', 9.5, false],
      ['lt', '1', '2', true],
      ['lt', 2, 2, false],
      ['lte', 2, '2', true],
      ['lte', '-3', -2, true],
      ['gt', 'abc', 1, false],
      ['lt', 'abc', 1, false],
      ['gt', 5, 'abc', false],
      ['gt', true, 0, false],
      ['gt', '1e3', 999, true],
    ]),
  )('R9: numeric operators: $a $op $e is $result (numeric strings count as numbers, non-numbers are false)', ({ op, actual, expected, result }) => {
    expect(holds(op, actual, expected)).toBe(result)
  })

  it.each(
    table([
      ['contains', 'hello world', 'lo w', true],
      ['contains', 'Hello', 'hello', false],
      ['contains', ['a', 'b'], 'b', true],
      ['contains', ['a', 'bc'], 'b', false],
      ['contains', [1, 2], '2', true],
      ['contains', 12345, 23, true],
      ['not_contains', 'hello', 'x', true],
      ['not_contains', 'hello', 'ell', false],
      ['not_contains', ['a', 'b'], 'b', false],
      ['starts_with', 'summer-sale', 'summer', true],
      ['starts_with', 'summer-sale', 'Summer', false],
      ['starts_with', 12345, '12', true],
      ['ends_with', 'summer-sale', 'sale', true],
      ['ends_with', 'summer-sale', 'summer', false],
    ]),
  )('R9: string operators: $a $op $e is $result', ({ op, actual, expected, result }) => {
    expect(holds(op, actual, expected)).toBe(result)
  })

  it.each(
    table([
      ['in', 'b', ['a', 'b'], true],
      ['in', 'c', ['a', 'b'], false],
      ['in', '10', [10, 20], true],
      ['in', 10, ['10'], true],
      ['in', 'A', ['a'], false],
      ['not_in', 'c', ['a', 'b'], true],
      ['not_in', 'a', ['a', 'b'], false],
      ['not_in', 20, ['20.0'], false],
    ]),
  )('R9: in/not_in: $a $op $e is $result (value a list)', ({ op, actual, expected, result }) => {
    expect(holds(op, actual, expected)).toBe(result)
  })

  it.each([
    { actual: 'x', exists: true },
    { actual: '', exists: true },
    { actual: 0, exists: true },
    { actual: false, exists: true },
    { actual: [], exists: true },
    { actual: null, exists: false },
    { actual: undefined, exists: false },
  ])('R9: exists holds when the key is present and not null ($actual -> $exists); not_exists is its negation', ({ actual, exists }) => {
    expect(holds('exists', actual)).toBe(exists)
    expect(holds('not_exists', actual)).toBe(!exists)
  })

  const TRUE_ON_MISSING = new Set<Operator>(['not_exists', 'neq', 'not_contains', 'not_in'])
  const OPERAND: Record<Operator, unknown> = {
    eq: 'x',
    neq: 'x',
    gt: 1,
    gte: 1,
    lt: 1,
    lte: 1,
    contains: 'x',
    not_contains: 'x',
    starts_with: 'x',
    ends_with: 'x',
    exists: undefined,
    not_exists: undefined,
    in: ['x'],
    not_in: ['x'],
  }
  it.each(OPERATORS.map((op) => ({ op, result: TRUE_ON_MISSING.has(op) })))(
    'R9: a missing property: $op is $result (false for every operator but not_exists, neq, not_contains, not_in)',
    ({ op, result }) => {
      expect(holds(op, undefined, OPERAND[op])).toBe(result)
      // A property present with a null value is missing too (exists needs a non-null value).
      expect(holds(op, null, OPERAND[op])).toBe(result)
    },
  )

  it('R9: a missing property is even false for eq/lt against a missing or zero operand', () => {
    expect(holds('eq', undefined, undefined)).toBe(false)
    expect(holds('lt', undefined, 0)).toBe(false)
    expect(holds('lte', undefined, 0)).toBe(false)
  })

  it.each([
    { value: 10, n: 10 },
    { value: '10', n: 10 },
    { value: '9.99', n: 9.99 },
    { value: '-0.5', n: -0.5 },
    { value: '.5', n: 0.5 },
    { value: '1e3', n: 1000 },
    { value: '', n: null },
    { value: ' 10', n: null },
    { value: '10abc', n: null },
    { value: '0x10', n: null },
    { value: 'Infinity', n: null },
    { value: Number.NaN, n: null },
    { value: true, n: null },
    { value: null, n: null },
  ])('R9: a numeric string counts as its number: $value -> $n', ({ value, n }) => {
    expect(asNumber(value)).toBe(n)
  })

  it.each([
    { path: 'total', result: 30 },
    { path: 'address.city', result: 'Lyon' },
    { path: 'address.zip', result: undefined },
    { path: 'address.city.name', result: undefined },
    { path: 'items.0.sku', result: 'A1' },
    { path: 'utm.source', result: 'literal key with a dot' },
    { path: 'missing.deep', result: undefined },
  ])('R9: dot paths into nested objects: $path', ({ path, result }) => {
    const properties = { total: 30, address: { city: 'Lyon' }, items: [{ sku: 'A1' }], 'utm.source': 'literal key with a dot' }
    expect(valueAt(properties, path)).toEqual(result)
  })
})
