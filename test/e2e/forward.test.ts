/**
 * Conversions forwarded to Segment (docs/outbound.md): a real analytics-node
 * client produces into goalpost, goalpost forwards through its own
 * analytics-node client to a Segment-compatible collector this test runs.
 */
import { Analytics } from '@segment/analytics-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCollector, type Collector, type CollectedMessage } from '../helpers/collector.ts'
import { WRITE_KEY, startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { admin, putConfig } from '../helpers/segment-webhook.ts'
import { bounce, cartCampaign, conversionRows, order, outboxRows, persisted, producer, type Call } from '../helpers/outbound.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
let collector: Collector
let p: ReturnType<typeof producer>
const FORWARD_KEY = 'forward-write-key'

const PEOPLE = ['u1', 'u2', 'u3', 'u4', 'anon-5', 'mover']
const recorded = () => collector.accepted().filter((m) => m.event === 'Conversion Recorded')
const revoked = () => collector.accepted().filter((m) => m.event === 'Conversion Revoked')
const distinct = (ms: CollectedMessage[]) => new Map(ms.map((m) => [m.messageId, m]))

async function sendPhases(phases: Call[][]) {
  const ids: string[] = []
  for (const phase of phases) ids.push(...(await p.send(phase)))
  await persisted(gp, ids)
}

beforeAll(async () => {
  collector = await startCollector()
  gp = await startGoalpost({}, { GOALPOST_FORWARD_WRITE_KEY: FORWARD_KEY, GOALPOST_FORWARD_HOST: collector.url })
  await putConfig(gp, { campaigns: [cartCampaign()] })
  p = producer(gp)
  // Each phase in requests of its own: later phases get later processing times (R1, R2).
  await sendPhases([
    PEOPLE.map((u) => ({ kind: 'track', ...(u.startsWith('anon') ? { anonymousId: u } : { userId: u }), event: 'Cart Abandoned', properties: {} }) as Call),
    PEOPLE.map((u) => ({ kind: 'track', ...(u.startsWith('anon') ? { anonymousId: u } : { userId: u }), event: 'Email Sent', properties: { delivery_id: `${u}-d1`, campaign_id: 'cart' } }) as Call),
    [{ kind: 'track', userId: 'mover', event: 'Email Sent', properties: { delivery_id: 'mover-d2', campaign_id: 'cart' } }],
    PEOPLE.map((u, i) => order(u, 10 + i)),
  ])
}, 120_000)

afterAll(async () => {
  await p?.close()
  await gp?.stop()
  await collector?.close()
})

describe('forwarding conversions to Segment', () => {
  it('sends each conversion once as Conversion Recorded, with the conversion as properties and its processing time', async () => {
    const rows = await conversionRows(gp)
    expect(rows).toHaveLength(PEOPLE.length)
    await waitFor(() => distinct(recorded()).size === rows.length, { what: 'every conversion forwarded', timeoutMs: 30_000 })
    const byJourney = new Map<string, CollectedMessage[]>()
    for (const m of distinct(recorded()).values()) byJourney.set(m.properties!.journey_id as string, [...(byJourney.get(m.properties!.journey_id as string) ?? []), m])
    for (const c of rows) {
      const sent = byJourney.get(c.journey_id)!
      expect(sent, c.journey_id).toHaveLength(1) // one messageId per conversion
      const [m] = sent
      expect(m.messageId).toContain(c.journey_id)
      expect(m.properties).toEqual({
        campaign_key: 'cart',
        delivery_id: c.delivery_id,
        journey_id: c.journey_id,
        goal_type: 'event',
        attributed_via: 'delivered',
        channel: 'email',
        value: c.value,
        goal_version: 1,
        event_message_id: c.event_message_id,
        anchor_at: c.anchor_at.toISOString(),
        converted_at: c.converted_at.toISOString(),
      })
      expect(new Date(m.timestamp!).toISOString()).toBe(c.converted_at.toISOString())
      if (c.person_id.startsWith('anon')) expect([m.anonymousId, m.userId]).toEqual([c.person_id, undefined])
      else expect(m.userId).toBe(c.person_id)
      expect(m.context?.goalpost).toMatchObject({ forwarded: true, change: 'conversion_recorded' })
    }
    expect(collector.batches.every((b) => b.authorization === `Basic ${Buffer.from(`${FORWARD_KEY}:`).toString('base64')}`)).toBe(true)
    const mover = rows.find((r) => r.person_id === 'mover')!
    expect(mover.delivery_id).toBe('mover-d2') // R11: the latest anchor
  })

  it('R5: a bounce after the conversion sends Conversion Revoked, and a new Conversion Recorded when the credit moves', async () => {
    const before = await conversionRows(gp)
    const u1 = before.find((r) => r.person_id === 'u1')!
    const mover = before.find((r) => r.person_id === 'mover')!
    await sendPhases([[bounce('u1', 'u1-d1'), bounce('mover', 'mover-d2')]])
    const after = await conversionRows(gp)
    expect(after.find((r) => r.person_id === 'u1')).toBeUndefined()
    expect(after.find((r) => r.person_id === 'mover')!.delivery_id).toBe('mover-d1')
    await waitFor(() => distinct(revoked()).size === 2 && distinct(recorded()).size === before.length + 1, { what: 'the revocations forwarded', timeoutMs: 30_000 })
    const gone = [...distinct(revoked()).values()]
    expect(gone.map((m) => [m.userId, m.properties!.journey_id, m.properties!.delivery_id]).sort()).toEqual([
      ['mover', mover.journey_id, 'mover-d2'],
      ['u1', u1.journey_id, 'u1-d1'],
    ])
    const moved = [...distinct(recorded()).values()].filter((m) => m.properties!.journey_id === mover.journey_id)
    expect(moved.map((m) => m.properties!.delivery_id).sort()).toEqual(['mover-d1', 'mover-d2'])
    expect(new Set(moved.map((m) => m.messageId)).size).toBe(2) // the new one is a new message, not a resend
  })

  it('R3: a recompute that changes nothing sends nothing', async () => {
    const before = (await outboxRows(gp)).length
    const conversionsBefore = await conversionRows(gp)
    const queued = await admin(gp, 'POST', '/admin/recompute', {})
    expect(queued.status).toBe(202)
    const job = await waitFor(async () => {
      const r = await admin(gp, 'GET', `/admin/jobs/${queued.body.job_id}`)
      return r.body.state === 'completed' ? r.body : null
    }, { what: 'the recompute job', timeoutMs: 60_000 })
    expect(job.result.people).toBeGreaterThanOrEqual(PEOPLE.length)
    expect(await conversionRows(gp)).toEqual(conversionsBefore)
    expect((await outboxRows(gp)).length).toBe(before)
  })

  it('keeps a message the collector refuses for good with its reason, sends the rest of its batch, and sends it when retried by hand', async () => {
    collector.respond = (batch) => (batch.some((m) => m.userId === 'refused') ? 400 : 200)
    await sendPhases([
      [{ kind: 'track', userId: 'refused', event: 'Cart Abandoned', properties: {} }, { kind: 'track', userId: 'fine', event: 'Cart Abandoned', properties: {} }],
      ['refused', 'fine'].map((u) => ({ kind: 'track', userId: u, event: 'Email Sent', properties: { delivery_id: `${u}-d1`, campaign_id: 'cart' } }) as Call),
      [order('refused', 99), order('fine', 98)],
    ])
    const refusedRow = await waitFor(async () => (await outboxRows(gp, { person_id: 'refused', failed_permanently: true }))[0], { what: 'the refusal kept', timeoutMs: 30_000 })
    expect(refusedRow.last_error).toMatch(/400/)
    await waitFor(async () => (await outboxRows(gp, { person_id: 'fine' }))[0]?.sent_at, { what: 'the other conversion sent', timeoutMs: 30_000 })

    const listed = await admin(gp, 'GET', '/admin/outbox')
    expect(listed.status).toBe(200)
    expect(listed.body.changes).toEqual([expect.objectContaining({ id: String(refusedRow.id), destination: 'segment', change: 'conversion_recorded', person_id: 'refused', last_error: refusedRow.last_error })])
    const metrics = await (await fetch(`${gp.url}/metrics`)).text()
    expect(metrics).toMatch(/goalpost_outbox_refused\{destination="segment"\} 1/)
    expect(metrics).toMatch(/goalpost_outbox_sent_total\{destination="segment"\} [1-9]/)

    collector.respond = () => 200
    const retried = await admin(gp, 'POST', '/admin/outbox/retry', { ids: [String(refusedRow.id)] })
    expect(retried.body).toEqual({ retried: 1 })
    await waitFor(async () => (await outboxRows(gp, { person_id: 'refused' }))[0]?.sent_at, { what: 'the retried conversion sent', timeoutMs: 30_000 })
    expect(recorded().filter((m) => m.userId === 'refused').map((m) => m.messageId)).toEqual([listed.body.changes[0].message_id])
    expect((await admin(gp, 'GET', '/admin/outbox')).body.changes).toEqual([])
  })

  it('ignores its own forwarded calls when they come back through a Segment source: nothing changes', async () => {
    const counts = async () => {
      const out: Record<string, number> = {}
      for (const t of ['events', 'conversions', 'journeys', 'outbox']) out[t] = Number((await gp.database.db(t).count({ n: '*' }))[0].n)
      return out
    }
    const before = await counts()
    const conversionsBefore = await conversionRows(gp)
    // What Segment would relay to goalpost's source: the forwarded calls as the collector got them.
    const echoes = [...distinct(collector.accepted()).values()]
    expect(echoes.length).toBeGreaterThan(0)
    const feed = new Analytics({ writeKey: WRITE_KEY, host: gp.url, flushAt: 500, flushInterval: 20 })
    const sentinel = `sentinel-${Date.now()}`
    await Promise.all([
      ...echoes.map(
        (m) =>
          new Promise<void>((resolve, reject) =>
            feed.track({ messageId: m.messageId, userId: m.userId!, anonymousId: m.anonymousId, event: m.event!, properties: m.properties, context: m.context, timestamp: m.timestamp }, (err) => (err ? reject(err) : resolve())),
          ),
      ),
      new Promise<void>((resolve, reject) => feed.identify({ userId: 'sentinel', messageId: sentinel }, (err) => (err ? reject(err) : resolve()))),
    ])
    await feed.closeAndFlush()
    await persisted(gp, [sentinel]) // queued after the echoes, in the same requests
    expect(await counts()).toEqual({ ...before, events: before.events + 1 })
    expect(await gp.database.db('events').whereIn('message_id', echoes.map((m) => m.messageId)).count({ n: '*' })).toEqual([{ n: 0 }])
    expect(await conversionRows(gp)).toEqual(conversionsBefore)
  })
})
