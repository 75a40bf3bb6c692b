import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isoTimestamp, messageSchema, parseTimestamp, plainMessage } from '../../src/segment/normalise.ts'
import { fuzzRuns, hostileMessage } from '../helpers/hostile.ts'

// normaliseMessage checks the common message without zod (plainMessage) and
// canonical dates without parsing them (isoTimestamp): a speed-up only, so
// both must answer exactly as the schema and the full parse do.

const FIELDS = ['type', 'messageId', 'userId', 'anonymousId', 'previousId', 'groupId', 'event', 'name', 'category', 'properties', 'traits', 'context', 'timestamp', 'originalTimestamp', 'receivedAt'] as const

const pad = (n: number, width: number) => String(n).padStart(width, '0')
/** Strings of toISOString's shape, real or not (day 31 in April, 24:00, year 0000, Feb 29 in 1900). */
const canonicalShaped = fc
  .tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 61 }), fc.integer({ min: 0, max: 61 }), fc.integer({ min: 0, max: 999 }))
  .map(([y, mo, d, h, mi, s, ms]) => `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(ms, 3)}Z`)
const dateLike = fc.oneof(canonicalShaped, fc.constantFrom('2024-02-29T12:00:00.000Z', '1900-02-29T00:00:00.000Z', '2026-01-01T10:00:00Z', '2026-01-01', 'yesterday'), fc.string())

/** What isoTimestamp answered before its fast path: Date's own round trip, else the strict parse. */
function isoTimestampByDate(value: string): string | null {
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(value) && !value.startsWith('0000')) {
    const parsed = new Date(value)
    if (!Number.isNaN(parsed.getTime()) && parsed.toISOString() === value) return value
  }
  return parseTimestamp(value)?.toISOString() ?? null
}

const fieldValue = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.constant(''),
  fc.string({ maxLength: 8 }),
  fc.string({ minLength: 250, maxLength: 260 }),
  fc.integer(),
  fc.constantFrom({}, { total: 1 }, [], [1]),
  dateLike,
)

const message = fc.record(
  {
    type: fc.constantFrom('track', 'identify', 'page', 'screen', 'group', 'alias', 'Track', 7),
    messageId: fieldValue,
    userId: fieldValue,
    anonymousId: fieldValue,
    previousId: fieldValue,
    groupId: fieldValue,
    event: fc.oneof(fieldValue, fc.string({ minLength: 1020, maxLength: 1030 })),
    name: fieldValue,
    category: fieldValue,
    properties: fieldValue,
    traits: fieldValue,
    context: fieldValue,
    timestamp: fc.oneof(fieldValue, dateLike),
    originalTimestamp: fc.oneof(fieldValue, dateLike),
    receivedAt: fc.oneof(fieldValue, dateLike),
    extra: fieldValue,
  },
  { requiredKeys: [] },
)

describe('normaliseMessage fast paths answer as the schema does', () => {
  it('isoTimestamp: a canonical-looking date is taken as it is exactly when it names a real instant', () => {
    fc.assert(
      fc.property(dateLike, (v) => {
        expect(isoTimestamp(v)).toBe(isoTimestampByDate(v))
      }),
      fuzzRuns(20_000),
    )
  })

  it('plainMessage: what it accepts, the schema accepts with the same fields; what it leaves, the schema parses', () => {
    fc.assert(
      fc.property(fc.oneof(message, hostileMessage), (input) => {
        const candidate = input as Record<string, unknown>
        const fast = plainMessage(candidate)
        if (fast === null) return
        const parsed = messageSchema.safeParse(candidate)
        expect(parsed.success).toBe(true)
        if (!parsed.success) return
        for (const f of FIELDS) expect([f, (fast as Record<string, unknown>)[f]]).toEqual([f, (parsed.data as Record<string, unknown>)[f]])
      }),
      fuzzRuns(5_000),
    )
  })

  it('plainMessage takes the everyday track and identify calls', () => {
    const base = { userId: 'u1', messageId: 'm1', receivedAt: '2026-01-01T10:00:00.000Z', timestamp: '2026-01-01T09:59:59.850Z', context: { library: { name: 'x' } } }
    expect(plainMessage({ ...base, type: 'track', event: 'Order Completed', properties: { total: 1 } })).not.toBeNull()
    expect(plainMessage({ ...base, type: 'identify', traits: { plan: 'pro' } })).not.toBeNull()
  })
})
