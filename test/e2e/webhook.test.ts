/**
 * Segment's Webhooks destinations, with requests built the way Segment builds
 * them: body = JSON.stringify(message) (or of the batch array), X-Signature =
 * hex HMAC-SHA1 of the body with the shared secret.
 */
import { createHmac, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WEBHOOK_SECRET, startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
beforeAll(async () => {
  gp = await startGoalpost()
})
afterAll(async () => {
  await gp?.stop()
})

const sign = (payload: string, secret = WEBHOOK_SECRET) => createHmac('sha1', secret).update(payload).digest('hex')
const DAY = 24 * 3600 * 1000

/** A track message as Segment relays it to a webhook: its own receivedAt, sentAt, timestamps, context. */
function segmentTrack(fields: { messageId: string; userId: string; event?: string; receivedAt?: string; properties?: object }) {
  const now = new Date().toISOString()
  return {
    type: 'track',
    event: fields.event ?? 'Order Completed',
    userId: fields.userId,
    messageId: fields.messageId,
    properties: fields.properties ?? { total: 30 },
    context: { library: { name: 'analytics.js', version: '2.11.1' }, ip: '203.0.113.7' },
    integrations: {},
    originalTimestamp: now,
    timestamp: now,
    sentAt: now,
    ...(fields.receivedAt ? { receivedAt: fields.receivedAt } : {}),
    channel: 'server',
    projectId: 'proj_1',
    version: 2,
  }
}

async function post(path: string, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${gp.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

type EventRow = { message_id: string; person_id: string; name: string; received_at: Date; sent_timestamp: Date | null; source: string }

async function stored(messageIds: readonly string[]): Promise<EventRow[]> {
  return (await waitFor(async () => {
    const rows: EventRow[] = await gp.database.db('events').whereIn('message_id', messageIds).orderBy('seq')
    return rows.length === messageIds.length && rows
  })) as EventRow[]
}

/** Sends a properly signed message and waits for it: anything refused before it would have been stored by now. */
async function barrier(run: string): Promise<void> {
  const body = JSON.stringify(segmentTrack({ messageId: `barrier-${run}`, userId: `wh-${run}`, event: 'Barrier' }))
  expect((await post('/webhooks/segment', body, { 'x-signature': sign(body) })).status).toBe(200)
  await stored([`barrier-${run}`])
}

describe('POST /webhooks/segment (CONTRACT.md HTTP; R1)', () => {
  it("stores a signed message at Segment's receivedAt, days in the past (R1: the webhook's receivedAt is honoured)", async () => {
    const run = randomUUID().slice(0, 8)
    const receivedAt = new Date(Date.now() - 3 * DAY).toISOString()
    const body = JSON.stringify(segmentTrack({ messageId: `wh-${run}`, userId: `wh-${run}`, receivedAt }))
    const res = await post('/webhooks/segment', body, { 'x-signature': sign(body) })
    expect(res).toEqual({ status: 200, body: { success: true } })
    const [row] = await stored([`wh-${run}`])
    expect(row.received_at.toISOString()).toBe(receivedAt)
    expect(row).toMatchObject({ person_id: `wh-${run}`, name: 'Order Completed', source: 'webhook' })
  })

  it('gives a webhook message without receivedAt the server time as processing time (R1)', async () => {
    const run = randomUUID().slice(0, 8)
    const body = JSON.stringify(segmentTrack({ messageId: `nort-${run}`, userId: `wh-${run}` }))
    const before = Date.now()
    expect((await post('/webhooks/segment', body, { 'x-signature': sign(body) })).status).toBe(200)
    const after = Date.now()
    const [row] = await stored([`nort-${run}`])
    expect(row.received_at.getTime()).toBeGreaterThanOrEqual(before)
    expect(row.received_at.getTime()).toBeLessThanOrEqual(after)
  })

  it('does not honour a client-set receivedAt on /v1/track: processing time is server time (R1)', async () => {
    const run = randomUUID().slice(0, 8)
    const backdated = new Date(Date.now() - 3 * DAY).toISOString()
    const before = Date.now()
    const res = await post('/v1/track', JSON.stringify(segmentTrack({ messageId: `api-${run}`, userId: `wh-${run}`, receivedAt: backdated })), {
      authorization: gp.basicAuth,
    })
    const after = Date.now()
    expect(res).toEqual({ status: 200, body: { success: true } })
    const [row] = await stored([`api-${run}`])
    expect(row.received_at.toISOString()).not.toBe(backdated)
    expect(row.received_at.getTime()).toBeGreaterThanOrEqual(before)
    expect(row.received_at.getTime()).toBeLessThanOrEqual(after)
    expect(row.source).toBe('api')
  })

  it('accepts an array body signed over its raw bytes, each message at its own receivedAt (CONTRACT.md: webhook array body; R1)', async () => {
    const run = randomUUID().slice(0, 8)
    const times = [5, 4].map((d) => new Date(Date.now() - d * DAY).toISOString())
    const messages = times.map((receivedAt, i) => segmentTrack({ messageId: `arr-${i}-${run}`, userId: `wh-${run}`, receivedAt }))
    // Not JSON.stringify's own layout: the signature must cover the bytes as sent, not a re-serialisation.
    const body = JSON.stringify(messages, null, 2)
    expect((await post('/webhooks/segment', body, { 'x-signature': sign(body) })).status).toBe(200)
    const rows = await stored(messages.map((m) => m.messageId))
    expect(rows.map((r) => r.received_at.toISOString())).toEqual(times)
  })

  it('accepts an array signed on its first element only with a valid write key, and refuses it (401) without one (CONTRACT.md: a signature over one message must not vouch for others)', async () => {
    const run = randomUUID().slice(0, 8)
    const batch = (tag: string) => [
      segmentTrack({ messageId: `${tag}-0-${run}`, userId: `wh-${run}`, properties: { note: 'Café ✓ "quoted"' } }),
      segmentTrack({ messageId: `${tag}-1-${run}`, userId: `wh-${run}`, event: 'Refund Issued', properties: { total: -30 } }),
    ]
    // As Webhooks (Actions) batching signs: the HMAC of the first element alone.
    const send = (messages: object[], headers: Record<string, string> = {}) =>
      post('/webhooks/segment', JSON.stringify(messages), { 'x-signature': sign(JSON.stringify(messages[0])), ...headers })

    const unkeyed = await send(batch('nokey'))
    expect(unkeyed.status).toBe(401)
    expect(unkeyed.body.error.code).toBe('unsigned_batch')
    const wrongKey = await send(batch('badkey'), { authorization: `Basic ${Buffer.from('not-the-key:').toString('base64')}` })
    expect(wrongKey.status).toBe(401)

    const keyed = batch('keyed')
    expect(await send(keyed, { authorization: gp.basicAuth })).toEqual({ status: 200, body: { success: true } })
    const rows = await stored(keyed.map((m) => m.messageId))
    expect(rows.map((r) => r.name)).toEqual(['Order Completed', 'Refund Issued'])
    expect(rows.every((r) => r.source === 'webhook')).toBe(true)

    await barrier(run)
    const refused = [...batch('nokey'), ...batch('badkey')].map((m) => m.messageId)
    expect(await gp.database.db('events').whereIn('message_id', refused)).toEqual([])
  })

  it('honours receivedAt only on the signed element of a first-element-signed array; the rest get server time (R1: a replayed signature must not backdate other messages)', async () => {
    const run = randomUUID().slice(0, 8)
    const past = new Date(Date.now() - 5 * DAY).toISOString()
    const messages = [0, 1].map((i) => segmentTrack({ messageId: `half-${i}-${run}`, userId: `wh-${run}`, receivedAt: past }))
    const before = Date.now()
    const res = await post('/webhooks/segment', JSON.stringify(messages), {
      'x-signature': sign(JSON.stringify(messages[0])),
      authorization: gp.basicAuth,
    })
    expect(res.status).toBe(200)
    const rows = await stored(messages.map((m) => m.messageId))
    expect(rows.find((r) => r.message_id === `half-0-${run}`)!.received_at.toISOString()).toBe(past)
    expect(rows.find((r) => r.message_id === `half-1-${run}`)!.received_at.getTime()).toBeGreaterThanOrEqual(before - 1000)
  })

  it('refuses a tampered, unsigned or wrongly signed body with 401 and stores nothing (CONTRACT.md: bad signature → 401)', async () => {
    const run = randomUUID().slice(0, 8)
    const original = JSON.stringify(segmentTrack({ messageId: `tamper-${run}`, userId: `wh-${run}`, properties: { total: 30 } }))
    const tampered = original.replace('"total":30', '"total":3000')
    expect(tampered).not.toBe(original)

    const cases: { body: string; headers: Record<string, string>; code: string }[] = [
      { body: tampered, headers: { 'x-signature': sign(original) }, code: 'invalid_signature' },
      { body: original, headers: {}, code: 'missing_signature' },
      { body: original, headers: { 'x-signature': sign(original, 'some-other-secret') }, code: 'invalid_signature' },
      // A signature over the first element vouches for nothing when that element was changed, write key or not.
      {
        body: JSON.stringify([JSON.parse(tampered)]),
        headers: { 'x-signature': sign(original), authorization: gp.basicAuth },
        code: 'invalid_signature',
      },
    ]
    for (const c of cases) {
      const res = await post('/webhooks/segment', c.body, c.headers)
      expect(res.status, c.code).toBe(401)
      expect(res.body.error.code).toBe(c.code)
      expect(typeof res.body.error.message).toBe('string')
    }

    await barrier(run)
    expect(await gp.database.db('events').where({ message_id: `tamper-${run}` })).toEqual([])
  })
})
