/**
 * The real `@segment/analytics-node` client pointed at goalpost as its host:
 * what a Segment user gets by changing one setting. Everything goes through
 * the library's own batching and retries, then goalpost's HTTP API, BullMQ and
 * the ingest worker into Postgres.
 */
import { randomUUID } from 'node:crypto'
import { Analytics, type AnalyticsSettings } from '@segment/analytics-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WRITE_KEY, startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
beforeAll(async () => {
  gp = await startGoalpost()
})
afterAll(async () => {
  await gp?.stop()
})

interface SentMessage {
  messageId: string
  type: string
  userId?: string
  anonymousId?: string
  timestamp?: string
}

/** A real analytics-node client on goalpost, recording what it sent and what it reported. */
function client(settings: Partial<AnalyticsSettings> = {}) {
  const analytics = new Analytics({
    writeKey: WRITE_KEY,
    host: gp.url,
    flushAt: 50,
    flushInterval: 20,
    maxRetries: 2,
    ...settings,
  })
  const sent: SentMessage[] = []
  const requests: { headers: Record<string, string> }[] = []
  const statuses: number[] = []
  const errors: { code: string; reason: unknown; messageId?: string }[] = []
  analytics.on('http_request', (r) => {
    requests.push({ headers: r.headers })
    sent.push(...(JSON.parse(r.body) as { batch: SentMessage[] }).batch)
  })
  analytics.on('http_response', (r) => statuses.push(r.status))
  analytics.on('error', (e) => errors.push({ code: e.code, reason: e.reason, messageId: e.ctx?.event.messageId }))
  return { analytics, sent, requests, statuses, errors }
}

type EventRow = {
  message_id: string
  seq: string | number
  person_id: string
  type: string
  name: string | null
  properties: Record<string, unknown>
  received_at: Date
  sent_timestamp: Date | null
  source: string
}

/** Waits until every message id is a row of the log, and returns the rows in persist order. */
async function persisted(messageIds: readonly string[], timeoutMs = 20_000): Promise<EventRow[]> {
  return (await waitFor(
    async () => {
      const rows: EventRow[] = await gp.database.db('events').whereIn('message_id', messageIds).orderBy('seq')
      return rows.length === messageIds.length && rows
    },
    { timeoutMs, what: `${messageIds.length} events rows` },
  )) as EventRow[]
}

const ids = (messages: readonly SentMessage[]) => messages.map((m) => m.messageId)

describe('analytics-node with host = goalpost (CONTRACT.md HTTP: POST /v1/batch)', () => {
  it('stores every call type as one events row, keeps messageIds, and merges the anonymous person (R1, R25, attributes)', async () => {
    const run = randomUUID().slice(0, 8)
    const anon = `anon-${run}`
    const user = `user-${run}`
    const { analytics, sent, requests, statuses, errors } = client()
    const before = Date.now()

    // Phase 1: an anonymous visitor, one track backdated by years (R1).
    analytics.track({ anonymousId: anon, event: 'Product Viewed', properties: { sku: 'A1' }, timestamp: '2021-03-04T05:06:07.000Z' })
    analytics.page({ anonymousId: anon, name: 'Pricing', category: 'Docs', properties: { path: '/pricing' } })
    await analytics.flush()
    const phase1 = await persisted(ids(sent))
    expect(phase1.map((r) => r.person_id)).toEqual([anon, anon])
    expect(await gp.database.db('people').where({ person_id: anon }).first()).toBeDefined()

    // Phase 2: the visitor signs up; identify carries both ids (R25), then the other call types.
    analytics.identify({ userId: user, anonymousId: anon, traits: { plan: 'pro', country: 'US', age: 30 } })
    analytics.screen({ userId: user, name: 'Home', properties: { tab: 'feed' } })
    analytics.group({ userId: user, groupId: `org-${run}`, traits: { name: 'Acme' } })
    analytics.alias({ userId: user, previousId: `legacy-${run}`, messageId: `alias-${run}` })
    analytics.track({ userId: user, event: 'Order Completed', properties: { total: 30 }, messageId: `order-${run}` })
    await analytics.flush()
    await persisted(ids(sent))

    // Phase 3: a null trait removes the attribute; others merge shallowly.
    analytics.identify({ userId: user, traits: { plan: null, country: 'DE' } })
    await analytics.closeAndFlush()
    const after = Date.now()

    expect(errors).toEqual([])
    expect(statuses.every((s) => s === 200)).toBe(true)
    // analytics-node 3.x never compresses: plain JSON with the write key as Basic auth.
    for (const r of requests) {
      expect(r.headers['Content-Encoding'] ?? r.headers['content-encoding']).toBeUndefined()
      expect(r.headers.Authorization).toBe(`Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`)
    }

    expect(sent).toHaveLength(8)
    const rows = await persisted(ids(sent))
    // Every call is exactly one row, under the library's (or the caller's) messageId.
    expect(rows.map((r) => r.message_id).sort()).toEqual(ids(sent).sort())
    expect(ids(sent)).toContain(`alias-${run}`)
    expect(ids(sent)).toContain(`order-${run}`)
    expect(rows.map((r) => [r.type, r.name, r.person_id])).toEqual([
      ['track', 'Product Viewed', user], // R25: moved to the known person by the merge
      ['page', 'Page Viewed', user],
      ['identify', null, user],
      ['screen', 'Screen Viewed', user],
      ['group', null, user],
      ['alias', null, user],
      ['track', 'Order Completed', user],
      ['identify', null, user],
    ])
    expect(rows.every((r) => r.source === 'api')).toBe(true)
    const byId = new Map(rows.map((r) => [r.message_id, r]))
    const page = rows[1]
    expect(page.properties).toEqual({ path: '/pricing', name: 'Pricing', category: 'Docs' })
    expect(rows[3].properties).toEqual({ tab: 'feed', name: 'Home' })
    expect(byId.get(`order-${run}`)!.properties).toEqual({ total: 30 })

    // R1: received_at is server time; the message's own timestamp is only stored.
    for (const r of rows) {
      expect(r.received_at.getTime()).toBeGreaterThanOrEqual(before)
      expect(r.received_at.getTime()).toBeLessThanOrEqual(after)
    }
    expect(rows[0].sent_timestamp!.toISOString()).toBe('2021-03-04T05:06:07.000Z')
    for (const m of sent.slice(1)) expect(byId.get(m.messageId)!.sent_timestamp!.toISOString()).toBe(new Date(m.timestamp!).toISOString())

    // Attributes: shallow merge, a null trait removes the key.
    const person = await gp.database.db('people').where({ person_id: user }).first()
    expect(person.attributes).toEqual({ country: 'DE', age: 30 })

    // R25: the anonymous person is merged away, with a link recorded for it (and for alias's previousId).
    expect(await gp.database.db('people').where({ person_id: anon }).first()).toBeUndefined()
    const links = await gp.database.db('identity_links').whereIn('anonymous_id', [anon, `legacy-${run}`]).orderBy('anonymous_id')
    expect(links.map((l) => [l.anonymous_id, l.person_id])).toEqual(
      [
        [anon, user],
        [`legacy-${run}`, user],
      ].sort((a, b) => a[0].localeCompare(b[0])),
    )
  })

  it('records delivery lifecycle events as deliveries rows; a later step stands in for earlier ones (CONTRACT.md built-in delivery events, R4, R5, R7)', async () => {
    const run = randomUUID().slice(0, 8)
    const user = `deliv-${run}`
    const { analytics, sent, errors } = client()

    analytics.track({ userId: user, event: 'Email Sent', properties: { delivery_id: `em-${run}`, campaign_id: '42' } })
    await analytics.flush()
    const [sentRow] = await persisted(ids(sent))
    analytics.track({ userId: user, event: 'Email Opened', properties: { delivery_id: `em-${run}`, campaign_id: '42' } })
    analytics.track({ userId: user, event: 'Push Notification Tapped', properties: { delivery_id: `push-${run}`, campaign_id: '43' } })
    await analytics.closeAndFlush()
    const rows = await persisted(ids(sent))
    expect(errors).toEqual([])
    const opened = rows.find((r) => r.name === 'Email Opened')!
    const tapped = rows.find((r) => r.name === 'Push Notification Tapped')!
    expect(opened.received_at.getTime()).toBeGreaterThanOrEqual(sentRow.received_at.getTime())

    const deliveries = (await waitFor(async () => {
      const d = await gp.database.db('deliveries').whereIn('delivery_id', [`em-${run}`, `push-${run}`]).orderBy('delivery_id')
      return d.length === 2 && d[0].opened_at !== null && d
    })) as Record<string, any>[]
    const [email, push] = deliveries
    expect(email).toMatchObject({ delivery_id: `em-${run}`, person_id: user, channel: 'email', campaign_ref: '42', clicked_at: null, failed_at: null })
    expect(email.sent_at.getTime()).toBe(sentRow.received_at.getTime())
    // Opened stands in for the delivered step nobody reported (R5, R7).
    expect(email.delivered_at.getTime()).toBe(opened.received_at.getTime())
    expect(email.opened_at.getTime()).toBe(opened.received_at.getTime())

    // A push tap alone counts as sent, delivered and opened at the tap's processing time.
    expect(push).toMatchObject({ delivery_id: `push-${run}`, person_id: user, channel: 'push', campaign_ref: '43', clicked_at: null, failed_at: null })
    for (const column of ['sent_at', 'delivered_at', 'opened_at'])
      expect((push[column] as Date).getTime(), column).toBe(tapped.received_at.getTime())
  })

  it('persists 2,000 track calls sent in batches of 100 exactly once (CONTRACT.md: /v1/batch, idempotent messageId)', { timeout: 120_000 }, async () => {
    const run = randomUUID().slice(0, 8)
    const { analytics, sent, statuses, errors } = client({ flushAt: 100, flushInterval: 10_000 })
    for (let i = 0; i < 2_000; i++)
      analytics.track({ userId: `load-${run}-${i % 50}`, event: 'Item Added', properties: { i } })
    await analytics.closeAndFlush()

    expect(errors).toEqual([])
    expect(statuses).toHaveLength(20)
    expect(statuses.every((s) => s === 200)).toBe(true)
    expect(new Set(ids(sent)).size).toBe(2_000)

    const { db } = gp.database
    await waitFor(
      async () => Number((await db('events').where('person_id', 'like', `load-${run}-%`).count({ n: '*' }))[0].n) >= 2_000,
      { timeoutMs: 90_000, intervalMs: 250, what: '2,000 load events' },
    )
    const rows: { message_id: string; i: number }[] = await db('events')
      .where('person_id', 'like', `load-${run}-%`)
      .select('message_id', db.raw(`(properties->>'i')::int AS i`))
    expect(rows).toHaveLength(2_000)
    expect(rows.map((r) => r.message_id).sort()).toEqual(ids(sent).sort())
    expect(new Set(rows.map((r) => r.i)).size).toBe(2_000)
    expect(Number((await db('rejected_messages').count({ n: '*' }).first())!.n)).toBe(0)
  })

  it('stores nothing sent with a wrong write key; analytics-node reports it as delivery_failure errors (CONTRACT.md: 401 for a bad key)', async () => {
    const run = randomUUID().slice(0, 8)
    const wrong = client({ writeKey: 'not-the-write-key', maxRetries: 5 })
    const callbackErrors: unknown[] = []
    wrong.analytics.track({ userId: `wrong-${run}`, event: 'Signed Up' }, (err) => callbackErrors.push(err))
    wrong.analytics.identify({ userId: `wrong-${run}`, traits: { plan: 'free' } }, (err) => callbackErrors.push(err))
    await wrong.analytics.closeAndFlush()

    // 401 is not retried by analytics-node: one request, one 'error' event per call.
    expect(wrong.statuses).toEqual([401])
    expect(wrong.errors).toHaveLength(2)
    for (const e of wrong.errors) {
      expect(e.code).toBe('delivery_failure')
      expect(String((e.reason as Error).message)).toMatch(/\[401\]/)
    }
    expect(wrong.errors.map((e) => e.messageId).sort()).toEqual(ids(wrong.sent).sort())
    expect(callbackErrors).toHaveLength(2)
    expect(callbackErrors.every((e) => e instanceof Error && /\[401\]/.test(e.message))).toBe(true)

    // A correctly keyed call made afterwards is the barrier: once it is stored, the rejected ones would be too.
    const right = client()
    right.analytics.track({ userId: `wrong-${run}`, event: 'Barrier' })
    await right.analytics.closeAndFlush()
    await persisted(ids(right.sent))
    const stored = await gp.database.db('events').where({ person_id: `wrong-${run}` })
    expect(stored.map((r) => r.name)).toEqual(['Barrier'])
    expect(await gp.database.db('events').whereIn('message_id', ids(wrong.sent))).toEqual([])
  })

  it('answers 200 with the refused call listed when one call of a batch is invalid; analytics-node sees success, and a batch of only invalid calls is a 400 it reports and does not retry (CONTRACT.md: partial batches)', async () => {
    const run = randomUUID().slice(0, 8)
    const { analytics, sent, statuses, errors } = client()
    // analytics-node's 32 KB guard undercounts (see the 500 KB test), so a 40 KB call is sent.
    analytics.track({ userId: `part-${run}`, event: 'Too Big', properties: { blob: 'x'.repeat(40_000) }, messageId: `big-${run}` })
    analytics.track({ userId: `part-${run}`, event: 'Fine', messageId: `fine-${run}` })
    await analytics.flush()
    expect(statuses).toEqual([200])
    expect(errors).toEqual([]) // the refused call is invisible to the app
    expect(ids(sent).sort()).toEqual([`big-${run}`, `fine-${run}`].sort())

    const res = await fetch(`${gp.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
      body: JSON.stringify({ batch: [{ type: 'track', userId: `part-${run}`, event: 'Fine Again', messageId: `fine2-${run}` }, sent.find((m) => m.messageId === `big-${run}`)] }),
    })
    // What analytics-node received and ignored: the same batch sent by hand shows the answer's rejected list.
    expect(await res.json()).toMatchObject({ success: true, rejected: [{ index: 1, messageId: `big-${run}`, error: { code: 'message_too_large' } }] })

    // Alone, the same call makes a 400: analytics-node gives up at once and reports it.
    analytics.track({ userId: `part-${run}`, event: 'Too Big', properties: { blob: 'x'.repeat(40_000) }, messageId: `big2-${run}` })
    await analytics.closeAndFlush()
    expect(statuses).toEqual([200, 400])
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ code: 'delivery_failure', messageId: `big2-${run}` })
    expect((errors[0].reason as Error).message).toMatch(/\[400\]/)

    await persisted([`fine-${run}`, `fine2-${run}`])
    expect((await gp.database.db('events').where({ person_id: `part-${run}` }).pluck('message_id')).sort()).toEqual(
      [`fine-${run}`, `fine2-${run}`].sort(),
    )
  })

  it('refuses a batch over 500 KB whole with 413, which analytics-node (whose size guard undercounts) reports per call and does not retry (CONTRACT.md: request over 500 KB → 413)', async () => {
    const run = randomUUID().slice(0, 8)
    const { analytics, sent, statuses, errors } = client({ flushAt: 20, maxRetries: 3 })
    // 20 calls of ~30 KB: each valid on its own, 600 KB together. analytics-node
    // means to cap a batch at 480 KB, but its size estimate counts only
    // %-escapes and the letter "i", so it sends the whole batch.
    for (let n = 0; n < 20; n++)
      analytics.track({ userId: `huge-${run}`, event: 'Blob Saved', properties: { n, blob: 'x'.repeat(30_000) } })
    await analytics.closeAndFlush()

    expect(statuses).toEqual([413])
    expect(errors).toHaveLength(20)
    expect(errors.every((e) => e.code === 'delivery_failure' && /\[413\]/.test((e.reason as Error).message))).toBe(true)
    expect(new Set(errors.map((e) => e.messageId))).toEqual(new Set(ids(sent)))

    const barrier = client()
    barrier.analytics.track({ userId: `huge-${run}`, event: 'Barrier' })
    await barrier.analytics.closeAndFlush()
    await persisted(ids(barrier.sent))
    expect(await gp.database.db('events').where({ person_id: `huge-${run}` }).pluck('name')).toEqual(['Barrier'])
  })
})
