import fc from 'fast-check'
import { MESSAGE_TYPES } from '../../src/segment/normalise.ts'

/**
 * fast-check arbitraries for hostile input: Segment-shaped messages whose
 * every field may be valid, of the wrong type, absurd or poisonous, and raw
 * bodies that are not JSON at all. Shared by the unit and the HTTP fuzz tests.
 */

/** Nesting `depth` levels deep, alternating objects and arrays. */
export const nested = (depth: number): unknown => {
  let value: unknown = 'bottom'
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { n: value }
  return value
}

/** Strings Postgres or JavaScript have trouble with, and any code points at all (lone surrogates included). */
export const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\ud800',
    'x\udfffy',
    '\\u0000',
    '__proto__',
    'constructor',
    'prototype',
    'x'.repeat(256),
    '2024-02-30T00:00:00.000Z',
    '0000-01-01T00:00:00.000Z',
    '1e400',
    'NaN',
    '{"a":1}',
    '<script>alert(1)</script>',
    "'; DROP TABLE events; --",
  ),
)

/** Any JSON-ish value, including hostile strings, big and tiny numbers, deep nesting and prototype keys. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.constantFrom(1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2, -0, 0, true, false, null) },
  { weight: 1, arbitrary: fc.integer({ min: 60, max: 140 }).map(nested) },
  { weight: 1, arbitrary: fc.constant(JSON.parse('{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}')) },
  { weight: 1, arbitrary: fc.constant({ big: 'x'.repeat(40_000) }) },
)

/** A field that is usually valid and sometimes anything at all. */
const field = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: hostileValue })

const id = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.integer())
/** Property values: mostly ordinary JSON, sometimes hostile strings, edge numbers or nesting near the limit. */
const attributeValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 3, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.constantFrom(1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2, -0) },
  { weight: 1, arbitrary: fc.integer({ min: 55, max: 70 }).map(nested) },
)
const attributes = fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), hostileString), attributeValue, { maxKeys: 5 })
const isoDate = fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString())

/** A Segment message, field by field valid or not; `messageId` is left to the caller. */
export const hostileMessage: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    type: field(fc.constantFrom(...MESSAGE_TYPES)),
    event: field(fc.string({ maxLength: 20 })),
    name: field(fc.string({ maxLength: 10 })),
    userId: field(id),
    anonymousId: field(id),
    previousId: field(id),
    groupId: field(id),
    properties: field(attributes),
    traits: field(attributes),
    context: field(attributes),
    timestamp: field(isoDate),
    receivedAt: field(isoDate),
    originalTimestamp: field(isoDate),
  },
  { requiredKeys: ['type'] },
)

/** Bodies that are not (valid) JSON: random bytes, truncated and broken documents. */
export const brokenBody: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.string({ unit: 'binary', maxLength: 100 }).map((s) => Buffer.from(s)),
  fc
    .tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat())
    .map(([v, cut]) => {
      const text = JSON.stringify({ batch: [v] })
      return Buffer.from(text.slice(0, cut % Math.max(1, text.length)))
    }),
  fc.constantFrom('{"batch":[', '[[[[', '{"batch":[{"type":"track"}]', '\uFEFF{"batch":[]}', 'null', '"a string"', '1e400').map((s) => Buffer.from(s)),
)

/**
 * fast-check run options: a fixed seed by default, so CI runs the same inputs
 * every time (as the determinism test does); `FUZZ_SEED=<n>` explores others
 * and `FUZZ_RUNS_FACTOR=<k>` runs k times as many. A failure prints its seed.
 */
export function fuzzRuns(numRuns: number): { numRuns: number; seed: number } {
  const seed = Number(process.env.FUZZ_SEED ?? 20261127)
  const factor = Number(process.env.FUZZ_RUNS_FACTOR ?? 1)
  return { numRuns: Math.max(1, Math.round(numRuns * (Number.isFinite(factor) && factor > 0 ? factor : 1))), seed: Number.isInteger(seed) ? seed : 20261127 }
}
