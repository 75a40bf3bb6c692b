/**
 * End-to-end helpers: Segment messages sent through the signed webhook (as
 * Segment's Webhooks destination sends them, each with Segment's own
 * `receivedAt`, R1), the configuration saved with `PUT /admin/config`, and
 * readers for the rows the rules write.
 */
import { createHmac, randomUUID } from 'node:crypto'
import { expect } from 'vitest'
import { ADMIN_TOKEN, WEBHOOK_SECRET, type TestGoalpost } from './goalpost.ts'
import { waitFor } from './wait.ts'

export const SEC = 1_000
export const MIN = 60 * SEC
export const HOUR = 60 * MIN
export const DAY = 24 * HOUR
export const iso = (t: number) => new Date(t).toISOString()
/** An instant on a day of March 2026: `mar(1, '10:05')`. */
export const mar = (day: number, hhmm: string, ms = 0) => Date.parse(`2026-03-${String(day).padStart(2, '0')}T${hhmm}:00Z`) + ms

export const sign = (body: string) => createHmac('sha1', WEBHOOK_SECRET).update(body).digest('hex')

export type Who = { userId: string } | { anonymousId: string } | { userId: string; anonymousId: string }
export type Message = Record<string, unknown> & { messageId: string }

const who = (w: string | Who): Who => (typeof w === 'string' ? { userId: w } : w)
const envelope = (at: number) => {
  // The client's own clock says "now": only receivedAt is the processing time (R1).
  const now = new Date().toISOString()
  return { messageId: `m-${randomUUID()}`, receivedAt: iso(at), sentAt: now, originalTimestamp: now, timestamp: now, context: { library: { name: 'analytics.js' } } }
}

export const track = (w: string | Who, event: string, properties: object, at: number, extra: object = {}): Message => ({
  ...envelope(at),
  type: 'track',
  ...who(w),
  event,
  properties,
  ...extra,
})

export const identify = (w: string | Who, traits: object, at: number): Message => ({ ...envelope(at), type: 'identify', ...who(w), traits })

/** A delivery lifecycle event (R4): `lifecycle('u1', 'Email Sent', 'd1', 'basic', t)`. */
export const lifecycle = (w: string | Who, event: string, deliveryId: string, campaign: string, at: number, extra: object = {}): Message =>
  track(w, event, { delivery_id: deliveryId, campaign_id: campaign, ...extra }, at)

/** The messages' processing times as Segment relays them, one signed request (an array body keeps their persist order, R2). */
export async function send(gp: TestGoalpost, messages: Message[]): Promise<string[]> {
  const body = JSON.stringify(messages)
  const res = await fetch(`${gp.url}/webhooks/segment`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-signature': sign(body) }, body })
  expect(res.status, await res.clone().text()).toBe(200)
  return messages.map((m) => m.messageId)
}

/**
 * Sends and waits until every message is in the log. Ingest persists and
 * evaluates in one transaction, so the rules' rows are there by then too.
 */
export async function sendAndWait(gp: TestGoalpost, messages: Message[]): Promise<string[]> {
  const ids = await send(gp, messages)
  await waitFor(async () => Number((await gp.database.db('events').whereIn('message_id', ids).count({ n: '*' }))[0].n) === ids.length, { what: 'messages persisted' })
  return ids
}

export async function admin(gp: TestGoalpost, method: string, path: string, body?: unknown) {
  const res = await fetch(`${gp.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

/**
 * Saves the whole configuration (PUT /admin/config), then waits until the
 * workers evaluate with it: an identify of a probe person is evaluated under
 * the new revision.
 */
export async function putConfig(gp: TestGoalpost, document: object): Promise<Record<string, any>> {
  const res = await admin(gp, 'PUT', '/admin/config', document)
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  // A probe persisted while a worker still had the old configuration cached is
  // evaluated under that one: send probes until one is judged under the new.
  const probes: string[] = []
  await waitFor(
    async () => {
      probes.push(`probe-${randomUUID()}`)
      await send(gp, [identify(probes[probes.length - 1], {}, Date.now())])
      const rows = await gp.database.db('person_evaluations').whereIn('person_id', probes).andWhere('config_revision', '>=', res.body.revision)
      return rows.length > 0
    },
    { what: `workers on config revision ${res.body.revision}`, intervalMs: 200 },
  )
  return res.body
}

const isoRow = <T extends Record<string, unknown>>(row: T): T =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])) as T

export async function journeys(gp: TestGoalpost, personId: string, campaign?: string) {
  const q = gp.database.db('journeys').where({ person_id: personId }).orderBy('entered_at')
  if (campaign) q.andWhere({ campaign_key: campaign })
  return (await q.select('journey_id', 'campaign_key', 'entered_at', 'entry_cause', 'entry_message_id', 'goal_version', 'exited_at', 'exit_reason', 'completed_at', 'converted_at')).map(isoRow)
}

export async function conversions(gp: TestGoalpost, personId: string, campaign?: string) {
  const q = gp.database.db('conversions').where({ person_id: personId }).orderBy('converted_at')
  if (campaign) q.andWhere({ campaign_key: campaign })
  const rows = await q.select('journey_id', 'campaign_key', 'person_id', 'delivery_id', 'goal_version', 'goal_type', 'event_message_id', 'converted_at', 'anchor_at', 'attributed_via', 'channel', 'value')
  return rows.map((r) => isoRow({ ...r, value: r.value === null ? null : Number(r.value) }))
}

export async function deliveries(gp: TestGoalpost, personId: string) {
  const rows = await gp.database.db('deliveries').where({ person_id: personId }).orderBy('delivery_id')
    .select('delivery_id', 'campaign_key', 'journey_id', 'sent_at', 'delivered_at', 'opened_at', 'clicked_at', 'failed_at', 'after_exit', 'converted_at')
  return rows.map(isoRow)
}

export async function memberships(gp: TestGoalpost, personId: string, segment?: string) {
  const q = gp.database.db('segment_memberships').where({ person_id: personId }).orderBy(['segment_key', 'joined_at'])
  if (segment) q.andWhere({ segment_key: segment })
  return (await q.select('segment_key', 'joined_at', 'left_at', 'join_message_id', 'leave_message_id')).map(isoRow)
}

/** Polls a reader until `accept` holds for its result; returns that result. */
export async function until<T>(read: () => Promise<T>, accept: (rows: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  let last: T | undefined
  await waitFor(async () => accept((last = await read())), { what, timeoutMs }).catch((err) => {
    throw new Error(`${(err as Error).message}\nlast read: ${JSON.stringify(last, null, 1)}`)
  })
  return last!
}
