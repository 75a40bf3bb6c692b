// Load generator thread for bench/ingest.ts (plain JS: worker threads get no tsx loader).
//
// Each thread opens `connections` keep-alive connections; every connection
// loop takes the next batch number from a counter shared by all threads
// (Atomics on a SharedArrayBuffer), builds that batch (cheap string work, a
// few hundred microseconds for 100 messages) and POSTs it to /v1/batch.
import http from 'node:http'
import { parentPort, workerData } from 'node:worker_threads'
import { batchPoster } from './post-batch.mjs'

// Also imported outside a worker thread (bench/sql-explain.ts uses buildBatch).
const { url, writeKey } = workerData ?? { url: 'http://127.0.0.1:0', writeKey: '' }
const now = () => performance.timeOrigin + performance.now()

// --- Segment-shaped messages, as @segment/analytics-node 3.x sends them ------

const LIBRARY = { name: '@segment/analytics-node', version: '3.1.0' }
const METADATA = { nodeVersion: process.versions.node, jsRuntime: 'node' }
const PRODUCTS = ['sku-1001', 'sku-1002', 'sku-2001', 'sku-2002', 'sku-3001', 'sku-3002', 'sku-4001', 'sku-5001']
const TRACK_EVENTS = [
  ['Product Viewed', 30],
  ['Product Added', 15],
  ['Checkout Started', 8],
  ['Order Completed', 6],
  ['Cart Abandoned', 5],
  ['Signed In', 10],
  ['Search Performed', 14],
  ['Feature Used', 12],
]
// Lifecycle steps in the proportions an email programme produces them.
const DELIVERY_EVENTS = [
  ['Email Sent', 40],
  ['Email Delivered', 35],
  ['Email Opened', 17],
  ['Email Link Clicked', 6],
  ['Email Bounced', 2],
]
const PAGES = [
  ['Home', '/'],
  ['Pricing', '/pricing'],
  ['Product', '/products/sku-1001'],
  ['Cart', '/cart'],
  ['Blog', '/blog/attribution-101'],
]
const PLANS = ['free', 'starter', 'pro', 'enterprise']
const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'BR', 'IN', 'JP']

function weighted(list) {
  const total = list.reduce((s, [, w]) => s + w, 0)
  const cumulative = []
  let acc = 0
  for (const [value, w] of list) cumulative.push([value, (acc += w) / total])
  return (r) => {
    for (const [value, c] of cumulative) if (r < c) return value
    return cumulative[cumulative.length - 1][0]
  }
}
const pickTrack = weighted(TRACK_EVENTS)
const pickDelivery = weighted(DELIVERY_EVENTS)

// mulberry32: tiny, fast, seeded per batch so a batch's content depends only on its number.
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The mix (per message): 8% page, 8% identify (with traits; a third also carry
 * the anonymousId used by earlier anonymous page views, which links/merges
 * it), 14% delivery lifecycle events (delivery_id, campaign_id, action_id),
 * 70% other track events.
 */
export function buildBatch(batchNo, size, cfg) {
  const r = rng(batchNo * 2654435761 + cfg.seed)
  const timestamp = new Date().toISOString()
  const batch = new Array(size)
  for (let i = 0; i < size; i++) {
    const u = Math.floor(r() * cfg.users)
    const userId = `user-${u}`
    const anonymousId = `anon-${cfg.runTag}-${u}`
    const messageId = `node-next-${cfg.runTag}-${batchNo}-${i}`
    const x = r()
    let m
    if (x < 0.08) {
      const [name, path] = PAGES[Math.floor(r() * PAGES.length)]
      const anonymous = r() < 0.5
      m = {
        type: 'page',
        name,
        ...(anonymous ? { anonymousId } : { userId }),
        properties: { path, url: `https://shop.example.com${path}`, title: `${name} | Example`, referrer: 'https://www.google.com/' },
      }
    } else if (x < 0.16) {
      m = {
        type: 'identify',
        userId,
        ...(r() < 0.33 ? { anonymousId } : {}),
        traits: {
          email: `${userId}@example.com`,
          name: `User ${u}`,
          plan: PLANS[Math.floor(r() * PLANS.length)],
          country: COUNTRIES[Math.floor(r() * COUNTRIES.length)],
          lifetime_value: Math.round(r() * 500000) / 100,
          logins: Math.floor(r() * 200),
        },
      }
    } else if (x < 0.3) {
      // Deliveries are shared across batches (several steps of one delivery),
      // and each delivery belongs to one user.
      const d = Math.floor(r() * cfg.deliveries)
      const du = (d * 7919) % cfg.users
      const campaign = d % 25
      m = {
        type: 'track',
        event: pickDelivery(r()),
        userId: `user-${du}`,
        properties: {
          delivery_id: `dlv-${cfg.runTag}-${d}`,
          campaign_id: `cmp-${campaign}`,
          action_id: `act-${campaign}-${d % 3}`,
          email_subject: 'Your cart is waiting',
          recipient: `user-${du}@example.com`,
        },
      }
    } else {
      const event = pickTrack(r())
      const product = PRODUCTS[Math.floor(r() * PRODUCTS.length)]
      const price = Math.round(r() * 20000) / 100
      m = {
        type: 'track',
        event,
        userId,
        properties:
          event === 'Order Completed' || event === 'Checkout Started' || event === 'Cart Abandoned'
            ? { order_id: `ord-${batchNo}-${i}`, cart_id: `cart-${u}`, total: price * 2, revenue: price * 2, currency: 'USD', products: [{ product_id: product, price, quantity: 2 }] }
            : event === 'Search Performed'
              ? { query: 'running shoes', results: Math.floor(r() * 50) }
              : { product_id: product, price, currency: 'USD', category: 'shoes' },
      }
    }
    m.context = { library: LIBRARY }
    m.timestamp = timestamp
    m.messageId = messageId
    m._metadata = METADATA
    batch[i] = m
  }
  return Buffer.from(JSON.stringify({ batch, sentAt: timestamp }))
}

// --- HTTP ---------------------------------------------------------------------

const post = batchPoster(url, writeKey, 'goalpost-bench (analytics-node-next compatible)')

async function runPhase(msg) {
  const { counter, totalBatches, batchSize, connections, cfg } = msg
  const next = new Int32Array(counter)
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections })
  const result = {
    requests: 0,
    ok: 0,
    acceptedEvents: 0,
    rejectedEvents: 0,
    failedEvents: 0,
    statuses: {},
    errors: [],
    latencies: [],
    buildMs: 0,
    firstRequestAt: Infinity,
    lastResponseAt: 0,
  }
  const loop = async () => {
    for (;;) {
      const batchNo = Atomics.add(next, 0, 1)
      if (batchNo >= totalBatches) return
      const t0 = performance.now()
      const body = buildBatch(cfg.batchOffset + batchNo, batchSize, cfg)
      const t1 = performance.now()
      result.buildMs += t1 - t0
      const sentAt = now()
      if (sentAt < result.firstRequestAt) result.firstRequestAt = sentAt
      const res = await post(agent, body)
      const doneAt = now()
      result.lastResponseAt = Math.max(result.lastResponseAt, doneAt)
      result.latencies.push(doneAt - sentAt)
      result.requests++
      result.statuses[res.status] = (result.statuses[res.status] ?? 0) + 1
      if (res.status === 200) {
        result.ok++
        let rejected = 0
        if (res.body.length > 20) {
          try {
            rejected = JSON.parse(res.body).rejected?.length ?? 0
          } catch {}
          if (rejected > 0 && result.errors.length < 5) result.errors.push({ status: 200, body: res.body.slice(0, 600) })
        }
        result.acceptedEvents += batchSize - rejected
        result.rejectedEvents += rejected
      } else {
        result.failedEvents += batchSize
        if (result.errors.length < 5) result.errors.push({ status: res.status, body: res.body.slice(0, 600) })
      }
    }
  }
  await Promise.all(Array.from({ length: connections }, loop))
  agent.destroy()
  return result
}

parentPort?.on('message', async (msg) => {
  if (msg.cmd === 'run') {
    try {
      parentPort.postMessage({ type: 'done', id: msg.id, result: await runPhase(msg) })
    } catch (err) {
      parentPort.postMessage({ type: 'error', id: msg.id, error: String(err?.stack ?? err) })
    }
  }
})
