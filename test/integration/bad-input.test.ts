import { createHmac } from 'node:crypto'
import net from 'node:net'
import zlib from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildServer } from '../../src/http/server.ts'
import { createIngestQueue, createMaintenanceQueue } from '../../src/jobs/queues.ts'
import { createRedis, waitUntilReady } from '../../src/jobs/redis.ts'
import { createLogger } from '../../src/logger.ts'
import { startGoalpost, WEBHOOK_SECRET, WRITE_KEY, type TestGoalpost } from '../helpers/goalpost.ts'
import { REDIS_URL } from '../helpers/env.ts'
import { deleteQueuePrefix, testQueuePrefix } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

/**
 * CONTRACT.md, HTTP: "Bad input gets a 4xx with a JSON body
 * {"error": {"code", "message", "details"?}} that says what is wrong, never a
 * 5xx, and nothing already accepted is lost".
 */

let gp: TestGoalpost
beforeAll(async () => {
  gp = await startGoalpost()
})
afterAll(async () => {
  await gp?.stop()
})

/** Every answer of the real server with a 5xx status: bad input must never give one. */
const serverErrors: string[] = []

/** Every messageId answered 200 for: all must be in `events` at the end. */
const acceptedIds = new Set<string>()
let unique = 0
const nextId = (what: string) => `bi-${what}-${++unique}`

interface Answer {
  status: number
  body: any
  headers: Headers
}

async function send(
  path: string,
  body: string | Buffer | undefined,
  headers: Record<string, string> = {},
  method = 'POST',
): Promise<Answer> {
  const payload = body === undefined || typeof body === 'string' ? body : new Uint8Array(body)
  const res = await fetch(`${gp.url}${path}`, { method, headers, body: payload })
  const text = await res.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // left as text: expectError fails on it
  }
  if (res.status >= 500) serverErrors.push(`${method} ${path} -> ${res.status} ${text}`)
  return { status: res.status, body: parsed, headers: res.headers }
}

/** POSTs JSON with the write key (Basic auth) unless headers say otherwise. */
const post = (path: string, json: unknown, headers: Record<string, string> = {}) =>
  send(path, JSON.stringify(json), { 'content-type': 'application/json', authorization: gp.basicAuth, ...headers })

const basic = (key: string) => `Basic ${Buffer.from(`${key}:`).toString('base64')}`
const sign = (payload: string | Buffer) => createHmac('sha1', WEBHOOK_SECRET).update(payload).digest('hex')

/** CONTRACT: the error body is {"error": {"code", "message", "details"?}}, nothing else. */
function expectError(answer: Answer, status: number, code?: string) {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status)
  expect(answer.body).toBeTypeOf('object')
  expect(Object.keys(answer.body)).toEqual(['error'])
  const error = answer.body.error
  expect(typeof error.code).toBe('string')
  expect(error.code.length).toBeGreaterThan(0)
  expect(typeof error.message).toBe('string')
  expect(error.message.length).toBeGreaterThan(0)
  for (const key of Object.keys(error)) expect(['code', 'message', 'details']).toContain(key)
  if (code !== undefined) expect(error.code).toBe(code)
  return error as { code: string; message: string; details?: any }
}

function expectSuccess(answer: Answer, ids: string[] = []) {
  expect(answer.status, JSON.stringify(answer.body)).toBe(200)
  expect(answer.body.success).toBe(true)
  for (const id of ids) acceptedIds.add(id)
}

const track = (what: string, extra: Record<string, unknown> = {}) => ({
  type: 'track',
  messageId: nextId(what),
  userId: 'bad-input-user',
  event: 'Order Completed',
  properties: { total: 10 },
  ...extra,
})

const eventIds = async (ids: string[]) =>
  (await gp.database.db('events').whereIn('message_id', ids).select('message_id')).map((r) => r.message_id as string)

async function waitForEvents(ids: string[]) {
  await waitFor(async () => (await eventIds(ids)).length === ids.length, { what: `events ${ids.join(', ')}` })
}

describe('CONTRACT bad input: malformed bodies', () => {
  it.each(['/v1/batch', '/v1/track', '/v1/identify'])('CONTRACT bad input: malformed JSON on %s is 400', async (path) => {
    const answer = await send(path, '{"batch": [', { 'content-type': 'application/json', authorization: gp.basicAuth })
    const error = expectError(answer, 400, 'invalid_json')
    expect(error.message).toMatch(/not valid JSON/)
  })

  it('CONTRACT bad input: malformed JSON on the webhook is 400 (even when signed)', async () => {
    const raw = '{"type": "track",'
    expectError(await send('/webhooks/segment', raw, { 'content-type': 'application/json', 'x-signature': sign(raw) }), 400, 'invalid_json')
  })

  it('CONTRACT bad input: an empty body is 400', async () => {
    expectError(await send('/v1/track', '', { 'content-type': 'application/json', authorization: gp.basicAuth }), 400)
    expectError(await send('/v1/batch', undefined, { authorization: gp.basicAuth }), 400)
  })

  it('CONTRACT HTTP: a JSON body labelled with another Content-Type (or none) is still read as JSON', async () => {
    const id = nextId('text-plain')
    const body = JSON.stringify({ batch: [track('x', { messageId: id })] })
    expectSuccess(await send('/v1/batch', body, { 'content-type': 'text/plain', authorization: gp.basicAuth }), [id])
    const id2 = nextId('no-ct')
    const res = await fetch(`${gp.url}/v1/batch`, {
      method: 'POST',
      headers: { authorization: gp.basicAuth },
      body: new Blob([JSON.stringify({ batch: [track('x', { messageId: id2 })] })]), // a Blob without type: no Content-Type
    })
    expect(res.status).toBe(200)
    acceptedIds.add(id2)
  })

  it('CONTRACT bad input: a body that is JSON but not an object is 400', async () => {
    for (const json of [null, 'track', 42, [track('arr')]]) {
      expectError(await post('/v1/track', json), 400)
      expectError(await post('/v1/batch', json), 400)
    }
  })

  it('CONTRACT bad input: an absurdly deep JSON body is 400, not a stack overflow', async () => {
    const depth = 100_000
    const raw = `{"batch":[{"type":"track","userId":"u","event":"E","properties":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}]}`
    expectError(await send('/v1/batch', raw, { 'content-type': 'application/json', authorization: gp.basicAuth }), 400)
    // The webhook checks the signature before parsing: unsigned, it is a 401 (and no crash either way).
    expectError(await send('/webhooks/segment', `[${raw}]`, { 'content-type': 'application/json', 'x-signature': 'ab' }), 401)
  })

  it('CONTRACT bad input: a message nested too deep is rejected alone in a batch', async () => {
    const nested = JSON.parse(`${'['.repeat(80)}${']'.repeat(80)}`)
    const good = track('depth-ok')
    const answer = await post('/v1/batch', { batch: [good, track('too-deep', { properties: { a: nested } })] })
    expectSuccess(answer, [good.messageId])
    expect(answer.body.rejected).toHaveLength(1)
    expect(answer.body.rejected[0]).toMatchObject({ index: 1, error: { code: 'invalid_message' } })
  })
})

describe('CONTRACT bad input: invalid messages are 400', () => {
  it('CONTRACT bad input: wrong field types', async () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['properties', { properties: ['not', 'an', 'object'] }],
      ['properties', { properties: 'total=10' }],
      ['event', { event: 42 }],
      ['userId', { userId: { id: 'u' } }],
      ['timestamp', { timestamp: 'yesterday' }],
      ['context', { context: 'web' }],
    ]
    for (const [field, change] of cases) {
      const error = expectError(await post('/v1/track', track('types', change)), 400, 'invalid_message')
      expect(error.message, field).toContain(field)
    }
    expectError(await post('/v1/identify', { userId: 'u', traits: [1, 2] }), 400, 'invalid_message')
  })

  it('CONTRACT bad input: a batch that is not an array, or a batch context that is not an object, is 400', async () => {
    expectError(await post('/v1/batch', { batch: { type: 'track' } }), 400, 'invalid_body')
    expectError(await post('/v1/batch', { messages: [track('no-batch-key')] }), 400, 'invalid_body')
    expectError(await post('/v1/batch', { batch: [track('ctx')], context: 'web' }), 400, 'invalid_body')
  })

  it('CONTRACT bad input: with a batch-level context, a message whose own context is not an object is still rejected', async () => {
    const good = track('batch-ctx-good')
    const answer = await post('/v1/batch', {
      batch: [good, track('batch-ctx-bad', { context: 'web' })],
      context: { library: { name: 'analytics-node' } },
    })
    expectSuccess(answer, [good.messageId])
    expect(answer.body.rejected).toEqual([
      expect.objectContaining({ index: 1, error: expect.objectContaining({ path: 'context' }) }),
    ])
  })

  it('CONTRACT bad input: a message with neither userId nor anonymousId', async () => {
    const error = expectError(await post('/v1/track', { event: 'Order Completed', messageId: nextId('anon') }), 400, 'invalid_message')
    expect(error.message).toMatch(/userId or an anonymousId/)
    expectError(await post('/v1/identify', { userId: '', anonymousId: '', traits: {} }), 400, 'invalid_message')
  })

  it('CONTRACT bad input: a track without event', async () => {
    const error = expectError(await post('/v1/track', { userId: 'u', properties: {} }), 400, 'invalid_message')
    expect(error.message).toMatch(/^event: /)
    expectError(await post('/v1/batch', { batch: [{ type: 'track', userId: 'u' }] }), 400, 'invalid_message')
  })

  it('CONTRACT bad input: an unknown message type in a batch', async () => {
    expectError(await post('/v1/batch', { batch: [{ type: 'purchase', userId: 'u' }] }), 400, 'invalid_message')
  })

  it('CONTRACT bad input: a NUL character is refused up front (400), never accepted and lost', async () => {
    expectError(await post('/v1/track', track('nul', { properties: { note: 'a\u0000b' } })), 400, 'invalid_message')
    const id = nextId('escaped-nul')
    expectSuccess(await post('/v1/track', track('x', { messageId: id, properties: { note: '\\u0000' } })), [id])
    await waitForEvents([id])
    const [row] = await gp.database.db('events').where('message_id', id)
    expect(row.properties.note).toBe('\\u0000')
  })

  it('CONTRACT bad input: a timestamp Postgres cannot store is refused up front (400)', async () => {
    expectError(await post('/v1/track', track('ts', { timestamp: '-271821-04-20T00:00:00Z' })), 400, 'invalid_message')
  })

  it('CONTRACT bad input: a single message over 32 KB on /v1/track is 400 message_too_large', async () => {
    const big = track('big', { properties: { blob: 'x'.repeat(33 * 1024) } })
    const error = expectError(await post('/v1/track', big), 400, 'message_too_large')
    expect(error.message).toMatch(/32768/)
  })
})

describe('CONTRACT bad input: batches with invalid messages', () => {
  it('CONTRACT bad input: a message over 32 KB inside a batch is listed in rejected, the others accepted', async () => {
    const a = track('around-big-a')
    const big = track('big-in-batch', { properties: { blob: 'x'.repeat(40 * 1024) } })
    const b = track('around-big-b')
    const answer = await post('/v1/batch', { batch: [a, big, b] })
    expectSuccess(answer, [a.messageId, b.messageId])
    expect(answer.body).toEqual({
      success: true,
      rejected: [{ index: 1, messageId: big.messageId, error: expect.objectContaining({ code: 'message_too_large' }) }],
    })
    await waitForEvents([a.messageId, b.messageId])
    expect(await eventIds([big.messageId])).toEqual([])
  })

  it('CONTRACT bad input: a mixed batch answers 200 {success, rejected:[{index, messageId, error}]} and the valid ones land', async () => {
    const valid = [track('mixed-0'), { type: 'identify', messageId: nextId('mixed-2'), userId: 'bad-input-user', traits: { plan: 'pro' } }, track('mixed-5')]
    const batch = [
      valid[0],
      { type: 'track', messageId: nextId('mixed-no-event'), userId: 'u' },
      valid[1],
      'not a message',
      { type: 'page', messageId: nextId('mixed-no-id'), name: 'Home' },
      valid[2],
      { type: 'track', messageId: 77, userId: 'u', event: 'E', properties: [] },
    ]
    const answer = await post('/v1/batch', { batch })
    expectSuccess(answer, valid.map((m) => m.messageId))
    expect(Object.keys(answer.body).sort()).toEqual(['rejected', 'success'])
    const rejected = answer.body.rejected as Array<{ index: number; messageId: string | null; error: { code: string; message: string } }>
    expect(rejected.map((r) => r.index)).toEqual([1, 3, 4, 6])
    expect(rejected.map((r) => r.messageId)).toEqual([(batch[1] as any).messageId, null, (batch[4] as any).messageId, '77'])
    for (const r of rejected) {
      expect(r.error.code).toBe('invalid_message')
      expect(r.error.message.length).toBeGreaterThan(0)
    }
    await waitForEvents(valid.map((m) => m.messageId))
    expect(await eventIds(rejected.map((r) => r.messageId).filter((id): id is string => id !== null))).toEqual([])
  })

  it('CONTRACT bad input: an all-invalid batch is 400 with every rejection in details', async () => {
    const batch = [{ type: 'track', userId: 'u' }, { type: 'track', event: 'E' }, 5]
    const error = expectError(await post('/v1/batch', { batch }), 400, 'invalid_message')
    expect(error.message).toMatch(/none of the 3 messages/)
    expect(error.details.rejected.map((r: { index: number }) => r.index)).toEqual([0, 1, 2])
    for (const r of error.details.rejected) expect(r.error).toMatchObject({ code: 'invalid_message' })
  })

  it('CONTRACT bad input: an empty batch is 400', async () => {
    expectError(await post('/v1/batch', { batch: [] }), 400, 'empty_batch')
  })
})

describe('CONTRACT bad input: request size (413) and encodings', () => {
  it('CONTRACT bad input: a request over 500 KB is refused whole with 413', async () => {
    const batch = Array.from({ length: 20 }, (_, i) => track(`huge-${i}`, { properties: { blob: 'x'.repeat(30 * 1024) } }))
    const raw = JSON.stringify({ batch })
    expect(raw.length).toBeGreaterThan(500 * 1024)
    expectError(await send('/v1/batch', raw, { 'content-type': 'application/json', authorization: gp.basicAuth }), 413, 'request_too_large')
    expect(await eventIds(batch.map((m) => m.messageId))).toEqual([])
  })

  it('CONTRACT bad input: a request just under 500 KB is accepted', async () => {
    const batch = Array.from({ length: 15 }, (_, i) => track(`large-${i}`, { properties: { blob: 'y'.repeat(30 * 1024) } }))
    const raw = JSON.stringify({ batch })
    expect(raw.length).toBeLessThan(500 * 1024)
    expectSuccess(
      await send('/v1/batch', raw, { 'content-type': 'application/json', authorization: gp.basicAuth }),
      batch.map((m) => m.messageId),
    )
  })

  it('CONTRACT bad input: a gzip body that inflates past 500 KB is 413 (decompression bomb)', async () => {
    const raw = JSON.stringify({ batch: [track('bomb', { properties: { blob: 'z'.repeat(2 * 1024 * 1024) } })] })
    const gz = zlib.gzipSync(raw)
    expect(gz.length).toBeLessThan(500 * 1024)
    const headers = { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: gp.basicAuth }
    expectError(await send('/v1/batch', gz, headers), 413, 'request_too_large')
  })

  it('CONTRACT HTTP: a gzip-encoded valid body is accepted and lands', async () => {
    const message = track('gzip')
    const gz = zlib.gzipSync(JSON.stringify({ batch: [message] }))
    const headers = { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: gp.basicAuth }
    const answer = await send('/v1/batch', gz, headers)
    expectSuccess(answer, [message.messageId])
    expect(answer.body).toEqual({ success: true })
    await waitForEvents([message.messageId])
  })

  it('CONTRACT HTTP: a deflate-encoded body is accepted too', async () => {
    const message = track('deflate')
    const headers = { 'content-type': 'application/json', 'content-encoding': 'deflate', authorization: gp.basicAuth }
    expectSuccess(await send('/v1/track', zlib.deflateSync(JSON.stringify(message)), headers), [message.messageId])
  })

  it('CONTRACT bad input: a body labelled gzip that is not gzip data is 400', async () => {
    const headers = { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: gp.basicAuth }
    expectError(await send('/v1/batch', JSON.stringify({ batch: [track('not-gzip')] }), headers), 400, 'invalid_encoding')
  })

  it('CONTRACT bad input: an unsupported Content-Encoding is 415', async () => {
    const headers = { 'content-type': 'application/json', 'content-encoding': 'br', authorization: gp.basicAuth }
    const error = expectError(await send('/v1/batch', zlib.brotliCompressSync(JSON.stringify({ batch: [track('br')] })), headers), 415)
    expect(error.code).toBe('unsupported_encoding')
  })
})

describe('CONTRACT bad input: write key (401)', () => {
  it('CONTRACT bad input: no write key is 401', async () => {
    const message = track('no-key')
    const error = expectError(await send('/v1/track', JSON.stringify(message), { 'content-type': 'application/json' }), 401, 'missing_write_key')
    expect(error.message).toMatch(/Authorization: Basic/)
    expect(await eventIds([message.messageId])).toEqual([])
  })

  it('CONTRACT bad input: a wrong write key in the Basic header is 401', async () => {
    expectError(await post('/v1/batch', { batch: [track('bad-key')] }, { authorization: basic('wrong-key') }), 401, 'invalid_write_key')
    expectError(await post('/v1/track', track('bad-key'), { authorization: basic(`${WRITE_KEY}x`) }), 401, 'invalid_write_key')
    expectError(await post('/v1/track', track('bad-key'), { authorization: `Bearer ${WRITE_KEY}` }), 401)
  })

  it('CONTRACT HTTP: the write key in the Basic header, with or without the trailing colon, is accepted', async () => {
    const a = track('basic-colon')
    expectSuccess(await post('/v1/track', a, { authorization: basic(WRITE_KEY) }), [a.messageId])
    const b = track('basic-no-colon')
    expectSuccess(await post('/v1/track', b, { authorization: `Basic ${Buffer.from(WRITE_KEY).toString('base64')}` }), [b.messageId])
  })

  it('CONTRACT HTTP: writeKey in the body is accepted; a wrong one is 401', async () => {
    const message = track('body-key')
    const noAuth = { authorization: '' }
    expectSuccess(await post('/v1/batch', { batch: [message], writeKey: WRITE_KEY }, noAuth), [message.messageId])
    const single = track('body-key-single')
    expectSuccess(await post('/v1/track', { ...single, writeKey: WRITE_KEY }, noAuth), [single.messageId])
    expectError(await post('/v1/batch', { batch: [track('body-key-bad')], writeKey: 'nope' }, noAuth), 401, 'invalid_write_key')
    expectError(await post('/v1/batch', { batch: [track('body-key-num')], writeKey: 42 }, noAuth), 401, 'missing_write_key')
  })

  it('CONTRACT bad input: a write key check comes before message validation (no information to anonymous callers)', async () => {
    expectError(await post('/v1/track', { userId: 'u' }, { authorization: '' }), 401)
  })
})

describe('CONTRACT bad input: webhook signature (401)', () => {
  const webhookMessage = (what: string, extra: Record<string, unknown> = {}) => ({
    ...track(what),
    receivedAt: '2024-03-01T10:00:00.000Z',
    ...extra,
  })

  it('CONTRACT bad input: a missing signature is 401', async () => {
    const raw = JSON.stringify(webhookMessage('wh-nosig'))
    expectError(await send('/webhooks/segment', raw, { 'content-type': 'application/json' }), 401, 'missing_signature')
  })

  it('CONTRACT bad input: a wrong signature is 401, even with a write key', async () => {
    const raw = JSON.stringify(webhookMessage('wh-badsig'))
    expectError(await send('/webhooks/segment', raw, { 'content-type': 'application/json', 'x-signature': sign(`${raw} `) }), 401, 'invalid_signature')
    expectError(
      await send('/webhooks/segment', raw, { 'content-type': 'application/json', 'x-signature': 'zz', authorization: gp.basicAuth }),
      401,
      'invalid_signature',
    )
  })

  it('R1, CONTRACT HTTP: a signed webhook message is accepted and its receivedAt is the processing time', async () => {
    const message = webhookMessage('wh-ok')
    const raw = JSON.stringify(message)
    expectSuccess(await send('/webhooks/segment', raw, { 'content-type': 'application/json', 'x-signature': sign(raw) }), [message.messageId])
    await waitForEvents([message.messageId])
    const [row] = await gp.database.db('events').where('message_id', message.messageId)
    expect(row.received_at.toISOString()).toBe('2024-03-01T10:00:00.000Z')
  })

  it('CONTRACT HTTP: an array body signed whole is accepted without a write key', async () => {
    const batch = [webhookMessage('wh-arr-a'), webhookMessage('wh-arr-b')]
    const raw = JSON.stringify(batch)
    expectSuccess(
      await send('/webhooks/segment', raw, { 'content-type': 'application/json', 'x-signature': sign(raw) }),
      batch.map((m) => m.messageId),
    )
  })

  it('CONTRACT HTTP: an array signed only on its first element is accepted with a valid write key', async () => {
    const batch = [webhookMessage('wh-first-a'), webhookMessage('wh-first-b')]
    const headers = { 'content-type': 'application/json', 'x-signature': sign(JSON.stringify(batch[0])), authorization: gp.basicAuth }
    expectSuccess(await send('/webhooks/segment', JSON.stringify(batch), headers), batch.map((m) => m.messageId))
    await waitForEvents(batch.map((m) => m.messageId))
  })

  it('CONTRACT bad input: an array signed only on its first element is 401 without a write key, or with a wrong one', async () => {
    const batch = [webhookMessage('wh-first-nokey-a'), webhookMessage('wh-first-nokey-b')]
    const signature = sign(JSON.stringify(batch[0]))
    const raw = JSON.stringify(batch)
    expectError(await send('/webhooks/segment', raw, { 'content-type': 'application/json', 'x-signature': signature }), 401, 'unsigned_batch')
    expectError(
      await send('/webhooks/segment', raw, { 'content-type': 'application/json', 'x-signature': signature, authorization: basic('wrong') }),
      401,
      'unsigned_batch',
    )
    expect(await eventIds(batch.map((m) => m.messageId))).toEqual([])
  })

  it('CONTRACT bad input: a signed webhook with an invalid message is 400, a signed empty array is 400', async () => {
    const raw = JSON.stringify({ type: 'track', userId: 'u' })
    expectError(await send('/webhooks/segment', raw, { 'content-type': 'application/json', 'x-signature': sign(raw) }), 400, 'invalid_message')
    expectError(await send('/webhooks/segment', '[]', { 'content-type': 'application/json', 'x-signature': sign('[]') }), 400, 'empty_batch')
    expectError(await send('/webhooks/segment', '7', { 'content-type': 'application/json', 'x-signature': sign('7') }), 400)
  })

  it('CONTRACT HTTP: the signature covers the decompressed body of a gzip webhook', async () => {
    const message = webhookMessage('wh-gzip')
    const raw = JSON.stringify(message)
    const headers = { 'content-type': 'application/json', 'content-encoding': 'gzip', 'x-signature': sign(raw) }
    expectSuccess(await send('/webhooks/segment', zlib.gzipSync(raw), headers), [message.messageId])
  })
})

describe('CONTRACT HTTP: routes, idempotence, nothing lost', () => {
  it('CONTRACT bad input: an unknown route is a JSON 404', async () => {
    expectError(await post('/v1/purchase', track('route')), 404, 'not_found')
    expectError(await send('/nope', undefined, {}, 'GET'), 404, 'not_found')
    expectError(await send('/v1/batch', undefined, {}, 'GET'), 404, 'not_found')
  })

  it('CONTRACT HTTP: a messageId seen before is accepted and ignored (one row)', async () => {
    const first = track('dup', { properties: { total: 1 } })
    expectSuccess(await post('/v1/track', first), [first.messageId])
    await waitForEvents([first.messageId])
    const again = { ...first, properties: { total: 999 } }
    // The marker rides in the same job: once it is in the log, the duplicate has been through the same transaction.
    const marker = track('after-dup')
    const answer = await post('/v1/batch', { batch: [again, again, marker] })
    expectSuccess(answer, [marker.messageId])
    expect(answer.body).toEqual({ success: true })
    await waitForEvents([marker.messageId])
    const rows = await gp.database.db('events').where('message_id', first.messageId)
    expect(rows).toHaveLength(1)
    expect(rows[0].properties).toEqual({ total: 1 })
  })

  it('CONTRACT HTTP, R3: a messageId repeated within one batch keeps the first message, in the log and in its effects', async () => {
    const messageId = nextId('dup-in-batch')
    const userId = `dup-person-${unique}`
    const batch = [
      { type: 'identify', messageId, userId, traits: { plan: 'first' } },
      { type: 'identify', messageId, userId, traits: { plan: 'second' } },
    ]
    expectSuccess(await post('/v1/batch', { batch }), [messageId])
    await waitForEvents([messageId])
    const rows = await gp.database.db('events').where('message_id', messageId)
    expect(rows).toHaveLength(1)
    expect(rows[0].properties).toEqual({ plan: 'first' })
    // The person's attributes come from the logged message, as a recompute from the log would give (R3).
    const person = await waitFor(async () => (await gp.database.db('people').where('person_id', userId))[0])
    expect(person.attributes).toEqual({ plan: 'first' })
  })

  it('CONTRACT HTTP: a message without messageId sent twice (a client retry) is stored once', async () => {
    const message = { type: 'track', userId: 'retry-user', event: 'Retried', properties: { n: unique } }
    expectSuccess(await post('/v1/track', message))
    await waitFor(async () => (await gp.database.db('events').where({ name: 'Retried' })).length > 0)
    const marker = track('after-retry')
    expectSuccess(await post('/v1/batch', { batch: [message, marker] }), [marker.messageId])
    await waitForEvents([marker.messageId])
    const rows = await gp.database.db('events').where({ name: 'Retried' })
    expect(rows).toHaveLength(1)
    expect(rows[0].message_id).toMatch(/^gp-/)
  })

  it('CONTRACT bad input: malformed JSON to an unknown route is still a JSON 4xx', async () => {
    const answer = await send('/v1/nope', '{', { 'content-type': 'application/json' })
    expect(answer.status).toBeGreaterThanOrEqual(400)
    expect(answer.status).toBeLessThan(500)
    expectError(answer, answer.status)
  })

  it('CONTRACT bad input: no bad input above gave a 5xx, and every accepted message is in the log (nothing lost)', async () => {
    expect(serverErrors).toEqual([])
    expect(acceptedIds.size).toBeGreaterThan(20)
    const ids = [...acceptedIds]
    await waitForEvents(ids)
    expect((await eventIds(ids)).sort()).toEqual(ids.sort())
    // Nothing accepted was later refused by Postgres either.
    const [{ n }] = await gp.database.db('rejected_messages').count({ n: '*' })
    expect(Number(n)).toBe(0)
  })

  it('CONTRACT HTTP: the server still answers /healthz and /readyz after all the bad input', async () => {
    const health = await send('/healthz', undefined, {}, 'GET')
    expect(health.status).toBe(200)
    expect(health.body).toEqual({ status: 'ok' })
    const ready = await send('/readyz', undefined, {}, 'GET')
    expect(ready.status).toBe(200)
  })
})

describe('CONTRACT HTTP: Redis unreachable', () => {
  it('CONTRACT HTTP: with Redis unreachable, a valid request is 503 with retry-after (so Segment retries), never 200', async () => {
    const log = createLogger('silent')
    const redis = createRedis('redis://127.0.0.1:1', 'producer')
    const queue = createIngestQueue(redis, testQueuePrefix())
    const maintenance = createMaintenanceQueue(redis, testQueuePrefix())
    for (const q of [queue, maintenance]) q.on('error', () => {}) // connection refused, over and over: expected here
    const app = await buildServer({
      config: { writeKeys: [WRITE_KEY], webhookSecret: WEBHOOK_SECRET, adminToken: 'unused' },
      queue,
      maintenance,
      db: gp.database.db,
      redis,
      log,
    })
    try {
      const message = track('redis-down')
      const res = await app.inject({
        method: 'POST',
        url: '/v1/track',
        headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
        payload: JSON.stringify(message),
      })
      expect(res.statusCode, res.body).toBe(503)
      expect(res.headers['retry-after']).toBe('5')
      const body = res.json()
      expect(body.error.code).toBe('queue_unavailable')
      expect(body.error.message).toMatch(/retry/)

      const raw = JSON.stringify(message)
      const webhook = await app.inject({
        method: 'POST',
        url: '/webhooks/segment',
        headers: { 'content-type': 'application/json', 'x-signature': sign(raw) },
        payload: raw,
      })
      expect(webhook.statusCode).toBe(503)

      // Bad input is still bad input (4xx), Redis or not.
      const bad = await app.inject({
        method: 'POST',
        url: '/v1/track',
        headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
        payload: JSON.stringify({ userId: 'u' }),
      })
      expect(bad.statusCode).toBe(400)

      const ready = await app.inject({ method: 'GET', url: '/readyz' })
      expect(ready.statusCode).toBe(503)
      expect(ready.json().checks).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'redis', ok: false })]))
    } finally {
      await app.close()
      redis.disconnect()
      await queue.close().catch(() => {})
      await maintenance.close().catch(() => {})
    }
  })
})

/**
 * A TCP relay to the test Redis that can stop relaying (Redis hangs) or go
 * away (Redis down) and come back on the same port: the shared Redis itself
 * is never touched.
 */
async function redisRelay() {
  const upstream = new URL(REDIS_URL)
  const sockets = new Set<net.Socket>()
  let frozen = false
  let server: net.Server | undefined
  let port = 0
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        const redis = net.connect(Number(upstream.port || 6379), upstream.hostname)
        const end = () => {
          client.destroy()
          redis.destroy()
          sockets.delete(client)
          sockets.delete(redis)
        }
        for (const [from, to] of [[client, redis], [redis, client]] as const) {
          sockets.add(from)
          from.on('data', (chunk) => {
            if (!frozen) to.write(chunk)
          })
          from.on('close', end)
          from.on('error', end)
        }
      })
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port
        resolve()
      })
    })
  await listen()
  return {
    url: () => `redis://127.0.0.1:${port}`,
    freeze: () => {
      frozen = true
    },
    async down() {
      frozen = false
      for (const socket of sockets) socket.destroy()
      sockets.clear()
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    },
    up: listen,
  }
}

describe('CONTRACT HTTP: Redis going away after start', () => {
  it('CONTRACT HTTP: Redis hanging or down gives 503 (the client retries); when it is back, 200 again', async () => {
    const relay = await redisRelay()
    const prefix = testQueuePrefix()
    const redis = createRedis(relay.url(), 'producer')
    await waitUntilReady(redis, 5_000)
    const queue = createIngestQueue(redis, prefix)
    const maintenance = createMaintenanceQueue(redis, prefix)
    for (const q of [queue, maintenance]) q.on('error', () => {}) // connection lost, on purpose
    const app = await buildServer({
      config: { writeKeys: [WRITE_KEY], webhookSecret: WEBHOOK_SECRET, adminToken: 'unused' },
      queue,
      maintenance,
      db: gp.database.db,
      redis,
      log: createLogger('silent'),
    })
    const postTrack = () =>
      app.inject({
        method: 'POST',
        url: '/v1/track',
        headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
        payload: JSON.stringify(track('relay')),
      })
    try {
      expect((await postTrack()).statusCode).toBe(200)

      // Redis stops answering: the request does not hang, it is a 503 within the queue timeout.
      relay.freeze()
      const started = Date.now()
      const hung = await postTrack()
      expect(hung.statusCode, hung.body).toBe(503)
      expect(hung.json().error.code).toBe('queue_unavailable')
      expect(Date.now() - started).toBeLessThan(12_000)

      // Redis is down: 503 at once.
      await relay.down()
      const down = await postTrack()
      expect(down.statusCode).toBe(503)
      expect(down.headers['retry-after']).toBe('5')

      // Redis is back: the client's retry succeeds.
      await relay.up()
      await waitFor(async () => (await postTrack()).statusCode === 200, { timeoutMs: 20_000, intervalMs: 200, what: 'a 200 once Redis is back' })
    } finally {
      await app.close()
      redis.disconnect()
      await queue.close().catch(() => {})
      await maintenance.close().catch(() => {})
      await relay.down()
      await deleteQueuePrefix(prefix)
    }
  })
})
