import { describe, expect, it } from 'vitest'
import {
  MAX_ID_LENGTH,
  MAX_MESSAGE_BYTES,
  MAX_MESSAGE_DEPTH,
  nestsDeeperThan,
  normaliseMessage,
  parseTimestamp,
  isoTimestamp,
  type IngestMessage,
  type MessageProblem,
  type MessageType,
} from '../../src/segment/normalise.ts'

const SERVER_TIME = '2024-06-01T12:00:00.000Z'

function ok(input: unknown, opts: { typeFromPath?: MessageType; honourReceivedAt?: boolean } = {}): IngestMessage {
  const result = normaliseMessage(input, { receivedAt: SERVER_TIME, ...opts })
  if (!result.ok) throw new Error(`expected the message to be accepted, got ${JSON.stringify(result.error)}`)
  return result.message
}

function bad(input: unknown, opts: { typeFromPath?: MessageType; honourReceivedAt?: boolean } = {}): MessageProblem {
  const result = normaliseMessage(input, { receivedAt: SERVER_TIME, ...opts })
  if (result.ok) throw new Error(`expected the message to be rejected, got ${JSON.stringify(result.message)}`)
  return result.error
}

describe('normaliseMessage: message types (CONTRACT HTTP, SEMANTICS vocabulary)', () => {
  it('track: the event name and properties are kept; context kept', () => {
    const m = ok({
      type: 'track',
      messageId: 'm-track',
      userId: 'u1',
      event: 'Order Completed',
      properties: { total: 30, items: [{ sku: 'a' }] },
      context: { ip: '1.2.3.4' },
    })
    expect(m).toEqual({
      messageId: 'm-track',
      type: 'track',
      name: 'Order Completed',
      userId: 'u1',
      anonymousId: null,
      properties: { total: 30, items: [{ sku: 'a' }] },
      meta: null,
      context: { ip: '1.2.3.4' },
      receivedAt: SERVER_TIME,
      timestamp: null,
    })
  })

  it('track without properties gets {} and null context', () => {
    const m = ok({ type: 'track', userId: 'u1', event: 'Signed Up' })
    expect(m.properties).toEqual({})
    expect(m.context).toBeNull()
  })

  it('track with null properties is accepted as {}', () => {
    expect(ok({ type: 'track', userId: 'u1', event: 'Signed Up', properties: null }).properties).toEqual({})
  })

  it("identify: traits become the message's properties, name is null", () => {
    const m = ok({ type: 'identify', userId: 'u1', anonymousId: 'a1', traits: { plan: 'pro', email: null } })
    expect(m.type).toBe('identify')
    expect(m.name).toBeNull()
    expect(m.properties).toEqual({ plan: 'pro', email: null })
    expect(m.userId).toBe('u1')
    expect(m.anonymousId).toBe('a1')
    expect(m.meta).toBeNull()
  })

  it('identify without traits has {} properties', () => {
    expect(ok({ type: 'identify', userId: 'u1' }).properties).toEqual({})
  })

  it("vocabulary: page is named 'Page Viewed' with name and category in properties", () => {
    const m = ok({ type: 'page', anonymousId: 'a1', name: 'Pricing', category: 'Docs', properties: { path: '/pricing' } })
    expect(m.name).toBe('Page Viewed')
    expect(m.properties).toEqual({ path: '/pricing', name: 'Pricing', category: 'Docs' })
  })

  it('vocabulary: page name/category override same-named properties; absent ones are not added', () => {
    expect(ok({ type: 'page', userId: 'u', name: 'Home', properties: { name: 'old' } }).properties).toEqual({ name: 'Home' })
    expect(ok({ type: 'page', userId: 'u' }).properties).toEqual({})
    expect(ok({ type: 'page', userId: 'u', name: null, category: null, properties: { a: 1 } }).properties).toEqual({ a: 1 })
  })

  it('vocabulary: page does not mutate the caller\'s properties object', () => {
    const properties = { path: '/' }
    ok({ type: 'page', userId: 'u', name: 'Home', properties })
    expect(properties).toEqual({ path: '/' })
  })

  it("vocabulary: screen is named 'Screen Viewed' with name and category in properties", () => {
    const m = ok({ type: 'screen', userId: 'u1', name: 'Checkout', category: 'Shop', properties: { step: 2 } })
    expect(m.type).toBe('screen')
    expect(m.name).toBe('Screen Viewed')
    expect(m.properties).toEqual({ step: 2, name: 'Checkout', category: 'Shop' })
  })

  it('group: groupId goes to meta, traits to properties', () => {
    const m = ok({ type: 'group', userId: 'u1', groupId: 'g1', traits: { name: 'Acme' } })
    expect(m.name).toBeNull()
    expect(m.meta).toEqual({ groupId: 'g1' })
    expect(m.properties).toEqual({ name: 'Acme' })
  })

  it('group: a numeric groupId is coerced to a string', () => {
    expect(ok({ type: 'group', userId: 'u1', groupId: 42 }).meta).toEqual({ groupId: '42' })
  })

  it('alias: previousId goes to meta, properties are {}', () => {
    const m = ok({ type: 'alias', userId: 'u1', previousId: 'anon-1', properties: { ignored: true } })
    expect(m.meta).toEqual({ previousId: 'anon-1' })
    expect(m.properties).toEqual({})
    expect(m.name).toBeNull()
    expect(m.userId).toBe('u1')
  })

  it('typeFromPath (/v1/<type>) sets the type, whatever the body says', () => {
    expect(ok({ userId: 'u1', event: 'Signed Up' }, { typeFromPath: 'track' }).type).toBe('track')
    const m = ok({ type: 'identify', userId: 'u1', event: 'Signed Up' }, { typeFromPath: 'track' })
    expect(m.type).toBe('track')
    expect(m.name).toBe('Signed Up')
  })
})

describe('normaliseMessage: ids', () => {
  it('userId or anonymousId is enough', () => {
    expect(ok({ type: 'track', userId: 'u1', event: 'E' })).toMatchObject({ userId: 'u1', anonymousId: null })
    expect(ok({ type: 'track', anonymousId: 'a1', event: 'E' })).toMatchObject({ userId: null, anonymousId: 'a1' })
  })

  it('numeric ids are coerced to strings', () => {
    const m = ok({ type: 'track', userId: 123, anonymousId: 4.5, event: 'E', messageId: 99 })
    expect(m.userId).toBe('123')
    expect(m.anonymousId).toBe('4.5')
    expect(m.messageId).toBe('99')
    expect(ok({ type: 'alias', userId: 7, previousId: 0 }).meta).toEqual({ previousId: '0' })
  })

  it('an empty-string id counts as absent', () => {
    expect(ok({ type: 'track', userId: '', anonymousId: 'a1', event: 'E' }).userId).toBeNull()
    expect(ok({ type: 'track', userId: 'u1', anonymousId: '', event: 'E' }).anonymousId).toBeNull()
    expect(bad({ type: 'track', userId: '', anonymousId: '', event: 'E' }).path).toBe('userId')
    expect(bad({ type: 'group', userId: 'u', groupId: '' }).path).toBe('groupId')
    expect(bad({ type: 'alias', userId: 'u', previousId: '' }).path).toBe('previousId')
  })

  it('null ids count as absent', () => {
    expect(ok({ type: 'track', userId: null, anonymousId: 'a1', event: 'E' }).userId).toBeNull()
  })

  it('a given messageId is kept as is', () => {
    expect(ok({ type: 'track', userId: 'u', event: 'E', messageId: 'ajs-123' }).messageId).toBe('ajs-123')
  })

  it('CONTRACT idempotence: a missing messageId becomes a deterministic gp- digest', () => {
    const message = { type: 'track', userId: 'u1', event: 'Order Completed', properties: { total: 30 } }
    const a = ok(message).messageId
    const b = normaliseMessage(structuredClone(message), { receivedAt: '2030-01-01T00:00:00.000Z' })
    expect(a).toMatch(/^gp-[0-9a-f]{40}$/)
    // Same message, another processing time (a client retry): the same id.
    expect(b.ok && b.message.messageId).toBe(a)
    // A different message: another id.
    expect(ok({ ...message, properties: { total: 31 } }).messageId).not.toBe(a)
    expect(ok({ ...message, userId: 'u2' }).messageId).not.toBe(a)
  })

  it('CONTRACT idempotence: an empty or null messageId counts as absent (digest)', () => {
    const message = { type: 'track', userId: 'u1', event: 'E' }
    const digest = ok(message).messageId
    expect(ok({ ...message, messageId: '' }).messageId).toMatch(/^gp-/)
    expect(ok({ ...message, messageId: null }).messageId).toMatch(/^gp-/)
    expect(digest).toMatch(/^gp-/)
  })

  it('CONTRACT idempotence: the same call to /v1/track and inside /v1/batch digests the same', () => {
    const viaPath = ok({ userId: 'u1', event: 'E', properties: { a: 1 } }, { typeFromPath: 'track' }).messageId
    const viaBatch = ok({ type: 'track', userId: 'u1', event: 'E', properties: { a: 1 } }).messageId
    expect(viaPath).toBe(viaBatch)
  })

  it('CONTRACT idempotence: the digest does not depend on key order', () => {
    const a = ok({ type: 'track', userId: 'u1', event: 'E', properties: { a: 1, b: { c: 2, d: 3 } } }).messageId
    const b = ok({ properties: { b: { d: 3, c: 2 }, a: 1 }, event: 'E', userId: 'u1', type: 'track' }).messageId
    expect(a).toBe(b)
  })

  it(`ids up to ${MAX_ID_LENGTH} characters are accepted, longer ones rejected`, () => {
    const max = 'x'.repeat(MAX_ID_LENGTH)
    const over = 'x'.repeat(MAX_ID_LENGTH + 1)
    expect(ok({ type: 'track', userId: max, event: 'E', messageId: max }).userId).toBe(max)
    for (const field of ['userId', 'anonymousId', 'messageId'] as const) {
      const error = bad({ type: 'track', userId: 'u', anonymousId: 'a', event: 'E', [field]: over })
      expect(error).toMatchObject({ code: 'invalid_message', path: field })
      expect(error.message).toContain(`at most ${MAX_ID_LENGTH}`)
    }
    expect(bad({ type: 'alias', userId: 'u', previousId: over }).path).toBe('previousId')
    expect(bad({ type: 'group', userId: 'u', groupId: over }).path).toBe('groupId')
  })
})

describe('normaliseMessage: R1 processing time', () => {
  it("R1: on the tracking API receivedAt is the server's, the message's own receivedAt is ignored", () => {
    const m = ok({ type: 'track', userId: 'u', event: 'E', receivedAt: '2020-01-01T00:00:00.000Z' })
    expect(m.receivedAt).toBe(SERVER_TIME)
  })

  it("R1: with honourReceivedAt (signed webhook) the message's own receivedAt is the processing time, as ISO", () => {
    const m = ok({ type: 'track', userId: 'u', event: 'E', receivedAt: '2020-01-01T01:00:00+01:00' }, { honourReceivedAt: true })
    expect(m.receivedAt).toBe('2020-01-01T00:00:00.000Z')
  })

  it('R1: with honourReceivedAt but no receivedAt in the message, the server time is used', () => {
    expect(ok({ type: 'track', userId: 'u', event: 'E' }, { honourReceivedAt: true }).receivedAt).toBe(SERVER_TIME)
  })

  it('R1: the client timestamp is stored as ISO 8601 UTC, never as the processing time', () => {
    const m = ok({ type: 'track', userId: 'u', event: 'E', timestamp: '2019-12-31T19:00:00-05:00' })
    expect(m.timestamp).toBe('2020-01-01T00:00:00.000Z')
    expect(m.receivedAt).toBe(SERVER_TIME)
    expect(ok({ type: 'track', userId: 'u', event: 'E', timestamp: '2020-01-01T00:00:00.123456Z' }).timestamp).toBe(
      '2020-01-01T00:00:00.123Z',
    )
  })

  it('R1: a timestamp without an offset is read as UTC, whatever the server zone; a date alone is midnight UTC', () => {
    expect(ok({ type: 'track', userId: 'u', event: 'E', timestamp: '2020-01-01T10:20:30' }).timestamp).toBe('2020-01-01T10:20:30.000Z')
    expect(ok({ type: 'track', userId: 'u', event: 'E', timestamp: '2020-01-01' }).timestamp).toBe('2020-01-01T00:00:00.000Z')
  })

  it('R1: originalTimestamp and a client receivedAt that is not the processing time are stored (in meta), never used', () => {
    const m = ok({ type: 'track', userId: 'u', event: 'E', originalTimestamp: '2020-01-01T00:00:00Z', receivedAt: '2020-01-02T00:00:00Z' })
    expect(m.receivedAt).toBe(SERVER_TIME)
    expect(m.meta).toEqual({ originalTimestamp: '2020-01-01T00:00:00.000Z', clientReceivedAt: '2020-01-02T00:00:00.000Z' })
    // On the signed webhook receivedAt is the processing time, so it is not kept twice.
    const w = ok({ type: 'alias', userId: 'u', previousId: 'a', receivedAt: '2020-01-02T00:00:00Z' }, { honourReceivedAt: true })
    expect(w.meta).toEqual({ previousId: 'a' })
    expect(bad({ type: 'track', userId: 'u', event: 'E', originalTimestamp: 'yesterday' }).path).toBe('originalTimestamp')
  })

  it('R1: a null timestamp is stored as null', () => {
    expect(ok({ type: 'track', userId: 'u', event: 'E', timestamp: null }).timestamp).toBeNull()
  })
})

describe('normaliseMessage: bad messages (CONTRACT bad input)', () => {
  it('CONTRACT bad input: a message that is not a JSON object', () => {
    for (const input of [null, undefined, 'track', 42, true, [], [{ type: 'track' }]]) {
      expect(bad(input)).toEqual({ code: 'invalid_message', message: 'a message must be a JSON object' })
    }
  })

  it('CONTRACT bad input: an unknown or missing type', () => {
    expect(bad({ type: 'purchase', userId: 'u', event: 'E' })).toMatchObject({ code: 'invalid_message', path: 'type' })
    expect(bad({ userId: 'u', event: 'E' })).toMatchObject({ path: 'type' })
    expect(bad({ type: 'Track', userId: 'u', event: 'E' }).message).toContain('track, identify, page, screen, group, alias')
  })

  it('CONTRACT bad input: a track without event', () => {
    expect(bad({ type: 'track', userId: 'u' })).toEqual({
      code: 'invalid_message',
      message: 'event: is required for a track call',
      path: 'event',
    })
    expect(bad({ type: 'track', userId: 'u', event: '' }).path).toBe('event')
    expect(bad({ type: 'track', userId: 'u', event: null }).path).toBe('event')
  })

  it('CONTRACT bad input: a message with neither userId nor anonymousId', () => {
    for (const type of ['track', 'identify', 'page', 'screen'] as const) {
      const error = bad({ type, event: 'E' })
      expect(error).toMatchObject({ code: 'invalid_message', path: 'userId' })
      expect(error.message).toContain('userId or an anonymousId')
    }
    expect(bad({ type: 'group', groupId: 'g' }).path).toBe('userId')
  })

  it('CONTRACT bad input: alias needs previousId and userId', () => {
    expect(bad({ type: 'alias', userId: 'u' })).toMatchObject({ path: 'previousId' })
    expect(bad({ type: 'alias', previousId: 'a', anonymousId: 'x' })).toMatchObject({ path: 'userId' })
    expect(bad({ type: 'alias', previousId: 'a' })).toMatchObject({ path: 'userId' })
  })

  it('CONTRACT bad input: group needs groupId', () => {
    expect(bad({ type: 'group', userId: 'u' })).toMatchObject({ code: 'invalid_message', path: 'groupId' })
  })

  it('CONTRACT bad input: wrong field types are rejected with the field named', () => {
    const base = { type: 'track', userId: 'u', event: 'E' }
    const cases: Array<[string, unknown]> = [
      ['properties', []],
      ['properties', 'a string'],
      ['properties', 5],
      ['context', ['x']],
      ['context', 'x'],
      ['event', 5],
      ['event', { name: 'E' }],
      ['userId', { id: 1 }],
      ['userId', true],
      ['anonymousId', ['a']],
      ['messageId', { id: 'm' }],
      ['timestamp', 1717243200000],
      ['receivedAt', true],
    ]
    for (const [field, value] of cases) {
      const error = bad({ ...base, [field]: value })
      expect(error.code, `${field} = ${JSON.stringify(value)}`).toBe('invalid_message')
      expect(error.path, `${field} = ${JSON.stringify(value)}`).toBe(field)
      expect(error.message.startsWith(`${field}: `)).toBe(true)
    }
    expect(bad({ type: 'identify', userId: 'u', traits: [] }).path).toBe('traits')
    expect(bad({ type: 'page', userId: 'u', name: 3 }).path).toBe('name')
    expect(bad({ type: 'page', userId: 'u', category: {} }).path).toBe('category')
    expect(bad({ type: 'group', userId: 'u', groupId: { g: 1 } }).path).toBe('groupId')
    expect(bad({ type: 'alias', userId: 'u', previousId: [] }).path).toBe('previousId')
  })

  it('CONTRACT bad input: an event name over 1024 characters', () => {
    expect(bad({ type: 'track', userId: 'u', event: 'E'.repeat(1025) }).path).toBe('event')
    expect(ok({ type: 'track', userId: 'u', event: 'E'.repeat(1024) }).name).toHaveLength(1024)
  })

  it('CONTRACT bad input: a timestamp that is not an ISO 8601 date-time', () => {
    for (const timestamp of [
      'yesterday',
      '',
      '1', // Date.parse reads this as 2001-01-01
      '2020', // and this as 2020-01-01
      'Tue, 01 Jan 2020 00:00:00 GMT',
      '2020-13-01T00:00:00Z',
      '2020-02-30T00:00:00Z', // Date.parse rolls this over to March 1st
      '2021-02-29',
      '2020-01-01T24:00:00Z',
      '2020-01-01T00:60:00Z',
      '2020-01-01T00:00:00+25:00',
    ]) {
      const error = bad({ type: 'track', userId: 'u', event: 'E', timestamp })
      expect(error, timestamp).toMatchObject({ code: 'invalid_message', path: 'timestamp' })
    }
    expect(ok({ type: 'track', userId: 'u', event: 'E', timestamp: '2020-02-29T23:59:59.999Z' }).timestamp).toBe(
      '2020-02-29T23:59:59.999Z',
    )
  })

  it('CONTRACT bad input: a timestamp Postgres timestamptz cannot hold (outside years 1-9999) is rejected, not lost later', () => {
    for (const timestamp of ['-271821-04-20T00:00:00Z', '+275760-09-13T00:00:00Z', '0000-06-01T00:00:00Z', '0001-01-01T00:30:00+01:00']) {
      expect(bad({ type: 'track', userId: 'u', event: 'E', timestamp }).path, timestamp).toBe('timestamp')
    }
    expect(ok({ type: 'track', userId: 'u', event: 'E', timestamp: '0001-01-01T00:00:00Z' }).timestamp).toBe('0001-01-01T00:00:00.000Z')
    expect(ok({ type: 'track', userId: 'u', event: 'E', timestamp: '9999-12-31T23:59:59Z' }).timestamp).toBe('9999-12-31T23:59:59.000Z')
  })

  it('R1, CONTRACT bad input: a bad receivedAt on the signed webhook is rejected', () => {
    const error = bad({ type: 'track', userId: 'u', event: 'E', receivedAt: 'soon' }, { honourReceivedAt: true })
    expect(error.path).toBe('receivedAt')
  })

  it(`CONTRACT bad input: a message over 32 KB gets code message_too_large`, () => {
    const base = { type: 'track', userId: 'u', event: 'E', properties: { blob: '' } }
    const overhead = Buffer.byteLength(JSON.stringify(base))
    const atLimit = { ...base, properties: { blob: 'x'.repeat(MAX_MESSAGE_BYTES - overhead) } }
    expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(MAX_MESSAGE_BYTES)
    expect(ok(atLimit).properties.blob).toHaveLength(MAX_MESSAGE_BYTES - overhead)
    const over = { ...base, properties: { blob: 'x'.repeat(MAX_MESSAGE_BYTES - overhead + 1) } }
    const error = bad(over)
    expect(error.code).toBe('message_too_large')
    expect(error.message).toContain(String(MAX_MESSAGE_BYTES))
  })

  it('CONTRACT bad input: the 32 KB limit counts bytes, not characters', () => {
    // 'é' is two bytes in UTF-8: 17,000 of them are 34,000 bytes in 17,000 characters.
    expect(bad({ type: 'track', userId: 'u', event: 'E', properties: { t: 'é'.repeat(17_000) } }).code).toBe('message_too_large')
  })

  it('CONTRACT bad input: a NUL character is rejected (Postgres cannot store it), wherever it is', () => {
    const cases = [
      { type: 'track', userId: 'u', event: 'E', properties: { note: 'a\u0000b' } },
      { type: 'track', userId: 'u', event: 'E\u0000' },
      { type: 'track', userId: 'u', event: 'E', properties: { 'key\u0000': 1 } },
      { type: 'identify', userId: 'u', traits: { nested: { deep: ['\u0000'] } } },
      { type: 'track', userId: 'u', event: 'E', properties: { note: 'a\\\u0000' } }, // backslash, then NUL
    ]
    for (const input of cases) {
      const error = bad(input)
      expect(error.code).toBe('invalid_message')
      expect(error.message).toContain('NUL')
    }
  })

  it('CONTRACT bad input: a lone UTF-16 surrogate is rejected; a proper pair (emoji) is fine', () => {
    expect(bad({ type: 'track', userId: 'u', event: 'E', properties: { s: 'x\ud800' } }).message).toContain('surrogate')
    expect(bad({ type: 'track', userId: 'u', event: 'E', properties: { s: '\udfff' } }).message).toContain('surrogate')
    expect(ok({ type: 'track', userId: 'u', event: 'E', properties: { s: '😀 \ud83d\ude00' } }).properties.s).toBe('😀 😀')
  })

  it('CONTRACT bad input: an escaped backslash followed by u0000 text is fine (it is not a NUL)', () => {
    const text = '\\u0000' // six characters: \ u 0 0 0 0
    expect(ok({ type: 'track', userId: 'u', event: 'E', properties: { text } }).properties.text).toBe(text)
    const surrogateText = '\\\\\\ud800 and \\ud800' // backslashes followed by ud800 text, no surrogate
    expect(ok({ type: 'track', userId: 'u', event: 'E', properties: { surrogateText } }).properties.surrogateText).toBe(surrogateText)
  })
})

describe('normaliseMessage: nesting depth', () => {
  const nested = (levels: number): unknown => {
    let value: unknown = 1
    for (let i = 0; i < levels; i++) value = i % 2 ? [value] : { v: value }
    return value
  }

  it(`CONTRACT bad input: a message nesting deeper than ${MAX_MESSAGE_DEPTH} levels is rejected, not a stack overflow (5xx)`, () => {
    // message (1) + properties (2) + the nested value's levels
    expect(ok({ type: 'track', userId: 'u', event: 'E', properties: { a: nested(MAX_MESSAGE_DEPTH - 2) } }).name).toBe('E')
    const error = bad({ type: 'track', userId: 'u', event: 'E', properties: { a: nested(MAX_MESSAGE_DEPTH - 1) } })
    expect(error.code).toBe('invalid_message')
    expect(error.message).toContain(String(MAX_MESSAGE_DEPTH))
    // Deep enough to overflow JSON.stringify's recursion: still an answer, not a throw.
    expect(bad({ type: 'track', userId: 'u', event: 'E', properties: { a: nested(200_000) } }).code).toBe('invalid_message')
  })

  it('nestsDeeperThan counts the value itself as level 1, and scalars as no level', () => {
    expect(nestsDeeperThan(1, 0)).toBe(false)
    expect(nestsDeeperThan(null, 0)).toBe(false)
    expect(nestsDeeperThan({}, 1)).toBe(false)
    expect(nestsDeeperThan({}, 0)).toBe(true)
    expect(nestsDeeperThan({ a: [1, { b: 2 }] }, 3)).toBe(false)
    expect(nestsDeeperThan({ a: [1, { b: 2 }] }, 2)).toBe(true)
    expect(nestsDeeperThan(nested(300_000), 10)).toBe(true)
  })
})

describe('isoTimestamp', () => {
  it("agrees with parseTimestamp on toISOString's form, exact dates and impossible ones", () => {
    const cases = [
      '2024-05-01T12:00:00.000Z',
      '2024-02-29T23:59:59.999Z',
      '9999-12-31T23:59:59.999Z',
      '0001-01-01T00:00:00.000Z',
      '0000-06-01T00:00:00.000Z', // year 0: outside 1-9999
      '2023-02-29T00:00:00.000Z', // not a leap year
      '2024-04-31T00:00:00.000Z',
      '2024-01-01T24:00:00.000Z',
      '2024-01-01T23:59:60.000Z',
      '2024-13-01T00:00:00.000Z',
      '2024-05-01T12:00:00.000+02:00',
      '2024-05-01T12:00:00Z',
    ]
    // And every day of a leap and a common year, in canonical form, with one past the month's end.
    for (const year of [2023, 2024])
      for (let month = 1; month <= 12; month++)
        for (let day = 28; day <= 32; day++) cases.push(`${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}T06:07:08.009Z`)
    for (const value of cases) expect(isoTimestamp(value), value).toBe(parseTimestamp(value)?.toISOString() ?? null)
    expect(isoTimestamp('2024-05-01T12:00:00.000+02:00')).toBe('2024-05-01T10:00:00.000Z')
    expect(isoTimestamp('2024-02-30T00:00:00.000Z')).toBeNull()
  })
})

describe('parseTimestamp', () => {
  it('R1: accepts ISO 8601 forms Segment libraries send, with their offsets', () => {
    expect(parseTimestamp('2024-05-01T12:00:00.000Z')?.toISOString()).toBe('2024-05-01T12:00:00.000Z')
    expect(parseTimestamp('2024-05-01T12:00:00+0200')?.toISOString()).toBe('2024-05-01T10:00:00.000Z')
    expect(parseTimestamp('2024-05-01T12:00:00-02')?.toISOString()).toBe('2024-05-01T14:00:00.000Z')
    expect(parseTimestamp('2024-05-01 12:00')?.toISOString()).toBe('2024-05-01T12:00:00.000Z')
    expect(parseTimestamp(' 2024-05-01T12:00:00.5Z ')?.toISOString()).toBe('2024-05-01T12:00:00.500Z')
  })

  it('R1: rejects what is not one exact instant', () => {
    for (const value of ['', 'now', '2024-5-1', '2024-05-01T12', '2024-05-01T12:00:00.000ZZ', '20240501T120000Z']) {
      expect(parseTimestamp(value), value).toBeNull()
    }
  })
})
