import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isStorableText } from '../../src/core/storable.ts'
import { InputError } from '../../src/errors.ts'
import { parseJsonBody } from '../../src/http/body.ts'
import { MAX_ID_LENGTH, MAX_MESSAGE_BYTES, MESSAGE_TYPES, isoTimestamp, normaliseMessage } from '../../src/segment/normalise.ts'
import { brokenBody, fuzzRuns, hostileMessage, hostileValue } from '../helpers/hostile.ts'

// Fuzzing the door: whatever a client sends, validation answers (never
// throws), and what it lets through is what Postgres can store.

const receivedAt = '2026-01-01T00:00:00.000Z'
function unstorableStrings(value: unknown, found: string[] = []): string[] {
  if (typeof value === 'string') {
    if (!isStorableText(value)) found.push(value)
  } else if (Array.isArray(value)) for (const v of value) unstorableStrings(v, found)
  else if (value !== null && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) {
      unstorableStrings(k, found)
      unstorableStrings(v, found)
    }
  return found
}

const isPlainObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v)

describe('normaliseMessage, fuzzed', () => {
  it('answers every input without throwing, and what it accepts is a storable message', () => {
    fc.assert(
      fc.property(fc.oneof(hostileMessage, hostileValue, fc.anything()), fc.boolean(), (input, honourReceivedAt) => {
        const result = normaliseMessage(input, { receivedAt, honourReceivedAt })
        if (!result.ok) {
          expect(['invalid_message', 'message_too_large']).toContain(result.error.code)
          expect(result.error.message).not.toBe('')
          return
        }
        const m = result.message
        expect(MESSAGE_TYPES).toContain(m.type)
        expect(m.messageId.length).toBeGreaterThan(0)
        expect(m.messageId.length).toBeLessThanOrEqual(MAX_ID_LENGTH)
        expect(m.userId ?? m.anonymousId).toBeTruthy()
        expect(isoTimestamp(m.receivedAt)).toBe(m.receivedAt)
        if (m.timestamp !== null) expect(isoTimestamp(m.timestamp)).toBe(m.timestamp)
        expect(isPlainObject(m.properties)).toBe(true)
        expect(m.context === null || isPlainObject(m.context)).toBe(true)
        expect(result.bytes).toBeLessThanOrEqual(MAX_MESSAGE_BYTES)
        expect(unstorableStrings(m)).toEqual([])
      }),
      fuzzRuns(3_000),
    )
    // Nothing a message carried reached Object.prototype.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('a valid message stays valid whatever unknown fields ride along (poisoned keys included)', () => {
    // Fields goalpost reads are validated whatever the type (a track with `name: {}` is refused).
    const KNOWN = new Set(['type', 'messageId', 'userId', 'anonymousId', 'previousId', 'groupId', 'event', 'name', 'category', 'properties', 'traits', 'context', 'timestamp', 'originalTimestamp', 'receivedAt'])
    const unknownKey = fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'prototype')).filter((k) => !KNOWN.has(k))
    fc.assert(
      fc.property(fc.dictionary(unknownKey, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), (extra) => {
        const message = { ...extra, type: 'track', event: 'Order Completed', userId: 'u1', messageId: 'm1', properties: { total: 1 } }
        const result = normaliseMessage(message, { receivedAt })
        expect(result.ok).toBe(true)
        if (result.ok) expect(result.message).toMatchObject({ type: 'track', name: 'Order Completed', userId: 'u1', messageId: 'm1' })
      }),
      fuzzRuns(500),
    )
  })
})

describe('parseJsonBody, fuzzed', () => {
  it('refuses every broken body with a 400 InputError, and returns what it parses', () => {
    fc.assert(
      fc.property(brokenBody, (raw) => {
        try {
          parseJsonBody(raw)
        } catch (err) {
          expect(err).toBeInstanceOf(InputError)
          expect((err as InputError).status).toBe(400)
          expect(['invalid_json', 'too_deeply_nested']).toContain((err as InputError).code)
        }
      }),
      fuzzRuns(2_000),
    )
  })

  it('refuses a body nested 100,000 levels deep with 400, without exhausting the stack', () => {
    const deep = Buffer.from(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)
    expect(() => parseJsonBody(deep)).toThrow(expect.objectContaining({ status: 400, code: 'too_deeply_nested' }))
  })
})
