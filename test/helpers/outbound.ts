/**
 * Helpers for the outbound tests (docs/outbound.md): a real analytics-node
 * client as the producer into goalpost, a cart-recovery configuration, and
 * readers of the outbox.
 */
import { randomUUID } from 'node:crypto'
import { Analytics } from '@segment/analytics-node'
import { WRITE_KEY, type TestGoalpost } from './goalpost.ts'
import { waitFor } from './wait.ts'

export type Call =
  | { kind: 'track'; userId?: string; anonymousId?: string; event: string; properties?: Record<string, unknown>; context?: Record<string, unknown>; messageId?: string }
  | { kind: 'identify'; userId: string; anonymousId?: string; traits?: Record<string, unknown> }

/** The real client on goalpost's tracking API; `send` resolves once goalpost took every call (each callback without error). */
export function producer(gp: TestGoalpost) {
  const analytics = new Analytics({ writeKey: WRITE_KEY, host: gp.url, flushAt: 100, flushInterval: 20, maxRetries: 3 })
  return {
    analytics,
    async send(calls: Call[]): Promise<string[]> {
      const ids = calls.map((c) => (c.kind === 'track' && c.messageId) || `p-${randomUUID()}`)
      await Promise.all(
        calls.map(
          (c, i) =>
            new Promise<void>((resolve, reject) => {
              const done = (err?: unknown) => (err ? reject(err) : resolve())
              const who = { ...(c.userId ? { userId: c.userId } : {}), ...(c.anonymousId ? { anonymousId: c.anonymousId } : {}) } as { userId: string }
              if (c.kind === 'track') analytics.track({ ...who, messageId: ids[i], event: c.event, properties: c.properties, context: c.context }, done)
              else analytics.identify({ ...who, messageId: ids[i], traits: c.traits }, done)
            }),
        ),
      )
      return ids
    },
    close: () => analytics.closeAndFlush(),
  }
}

/** Waits until these messages are in the log (and so evaluated: ingest evaluates in the same transaction). */
export async function persisted(gp: TestGoalpost, ids: string[]): Promise<void> {
  await waitFor(async () => Number((await gp.database.db('events').whereIn('message_id', ids).count({ n: '*' }))[0].n) === ids.length, {
    what: `${ids.length} messages persisted`,
    timeoutMs: 30_000,
  })
}

export const cartCampaign = (key = 'cart', extra: Record<string, unknown> = {}) => ({
  key,
  name: `Campaign ${key}`,
  trigger: { event: key === 'cart' ? 'Cart Abandoned' : `${key} Trigger` },
  goal: { event: 'Order Completed', within: '1d', after: 'delivered', value: 'total' },
  ...extra,
})

const who = (person: string) => (person.startsWith('anon') ? { anonymousId: person } : { userId: person })

/** A journey in `campaign` with these deliveries sent (one request after the trigger's). */
export const entered = (person: string, campaign: string, deliveries: string[]): Call[][] => [
  [{ kind: 'track', ...who(person), event: campaign === 'cart' ? 'Cart Abandoned' : `${campaign} Trigger`, properties: { cart_id: 'c1' } }],
  deliveries.map((d) => ({ kind: 'track', ...who(person), event: 'Email Sent', properties: { delivery_id: d, campaign_id: campaign } })),
]

export const order = (person: string, total: number): Call => ({ kind: 'track', ...who(person), event: 'Order Completed', properties: { total } })
export const bounce = (person: string, delivery: string, campaign = 'cart'): Call => ({
  kind: 'track',
  ...who(person),
  event: 'Email Bounced',
  properties: { delivery_id: delivery, campaign_id: campaign },
})

export async function outboxRows(gp: TestGoalpost, where: Record<string, unknown> = {}) {
  return gp.database.db('outbox').where(where).orderBy('id').select('*')
}

export async function conversionRows(gp: TestGoalpost) {
  const rows = await gp.database.db('conversions').orderBy('journey_id').select('*')
  return rows.map((r) => ({ ...r, value: r.value === null ? null : Number(r.value) }))
}
