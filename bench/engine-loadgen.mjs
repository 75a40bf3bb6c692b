// Load generator thread for bench/engine.ts (plain JS: worker threads get no tsx loader).
//
// People are numbered; person p belongs to campaign p % campaigns and sends,
// in processing order and all in one batch (so no two connections reorder
// them): an identify with the traits the campaign's audience filter wants,
// Cart Abandoned (the trigger of the event-triggered campaigns), Email Sent
// and Email Delivered of one delivery of their campaign, five noise events
// (track and page), and an Order Completed that matches the goal.
import http from 'node:http'
import { parentPort, workerData } from 'node:worker_threads'
import { batchPoster, newLoadResult, recordAnswer } from './post-batch.mjs'

const { url, writeKey } = workerData
const now = () => performance.timeOrigin + performance.now()
const LIBRARY = { name: '@segment/analytics-node', version: '3.1.0' }
export const EVENTS_PER_PERSON = 10

function personMessages(p, cfg) {
  const k = p % cfg.campaigns
  const userId = `${cfg.idPrefix}-u${p}`
  const cohort = `c${k}`
  const mid = (i) => `${cfg.idPrefix}-m${p}-${i}`
  const delivery = { delivery_id: `${cfg.idPrefix}-d${p}`, campaign_id: `bcmp-${k}`, action_id: `bact-${k}`, email_subject: 'Hello' }
  const total = 20 + (p % 200)
  const msgs = [
    { type: 'identify', userId, traits: { email: `${userId}@example.com`, cohort, plan: p % 2 ? 'pro' : 'enterprise', country: 'US' } },
    { type: 'track', event: 'Cart Abandoned', userId, properties: { cohort, cart_id: `cart-${p}`, total } },
    { type: 'track', event: 'Email Sent', userId, properties: delivery },
    { type: 'track', event: 'Email Delivered', userId, properties: delivery },
    { type: 'track', event: 'Product Viewed', userId, properties: { product_id: 'sku-1001', price: 19.5, currency: 'USD' } },
    { type: 'page', name: 'Pricing', userId, properties: { path: '/pricing', url: 'https://shop.example.com/pricing' } },
    { type: 'track', event: 'Search Performed', userId, properties: { query: 'running shoes', results: 12 } },
    { type: 'track', event: 'Product Added', userId, properties: { product_id: 'sku-1001', price: 19.5, quantity: 1 } },
    { type: 'page', name: 'Cart', userId, properties: { path: '/cart', url: 'https://shop.example.com/cart' } },
    { type: 'track', event: 'Order Completed', userId, properties: { order_id: `${cfg.idPrefix}-o${p}`, total, revenue: total, currency: 'USD' } },
  ]
  const timestamp = new Date().toISOString()
  msgs.forEach((m, i) => {
    m.messageId = mid(i)
    m.timestamp = timestamp
    m.context = { library: LIBRARY }
  })
  return { msgs, purchaseId: mid(EVENTS_PER_PERSON - 1), userId }
}

const post = batchPoster(url, writeKey, 'goalpost-bench-engine')

/**
 * Sends people [0, people) in batches of peoplePerBatch people. rate > 0:
 * batch b leaves at start + b * (events per batch / rate) (open loop, at most
 * `connections` in flight). Reports each batch's purchases when sent and answered.
 */
async function run(msg) {
  const { people, peoplePerBatch, connections, rate, cfg, id } = msg
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections })
  const totalBatches = Math.ceil(people / peoplePerBatch)
  const result = newLoadResult()
  const start = now()
  const sendBatch = async (b) => {
    const from = b * peoplePerBatch
    const to = Math.min(people, from + peoplePerBatch)
    const batch = []
    const purchases = []
    for (let p = from; p < to; p++) {
      const pm = personMessages(p, cfg)
      batch.push(...pm.msgs)
      purchases.push([pm.userId, pm.purchaseId])
    }
    const sentAt = now()
    const body = Buffer.from(JSON.stringify({ batch, sentAt: new Date(sentAt).toISOString() }))
    if (sentAt < result.firstRequestAt) result.firstRequestAt = sentAt
    if (rate > 0) parentPort.postMessage({ type: 'sent', id, purchases })
    const res = await post(agent, body)
    const doneAt = now()
    recordAnswer(result, res, batch.length, sentAt, doneAt)
    if (rate > 0) parentPort.postMessage({ type: 'answered', id, at: doneAt, status: res.status, purchases: purchases.map(([, m]) => m) })
  }
  let next = 0
  const loop = async () => {
    for (;;) {
      const b = next++
      if (b >= totalBatches) return
      if (rate > 0) {
        const due = start + (b * peoplePerBatch * EVENTS_PER_PERSON * 1000) / rate
        const wait = due - now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      }
      await sendBatch(b)
    }
  }
  await Promise.all(Array.from({ length: connections }, loop))
  agent.destroy()
  return result
}

parentPort.on('message', async (msg) => {
  if (msg.cmd !== 'run') return
  try {
    parentPort.postMessage({ type: 'done', id: msg.id, result: await run(msg) })
  } catch (err) {
    parentPort.postMessage({ type: 'error', id: msg.id, error: String(err?.stack ?? err) })
  }
})
