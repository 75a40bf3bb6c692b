// Load generator thread for bench/history.ts (plain JS: worker threads get no tsx loader).
//
// Live traffic as real traffic is: many people, each person's events in
// separate requests, interleaved with other people's. A live run gives each
// person of a group `cycles` x 5 events, in rounds: in round r every person
// gets their r-th event. Cycle c: identify, Email Sent (c = 0) or Email Opened,
// Email Delivered (c = 0) or Email Link Clicked, a page view (noise), Order
// Completed. The deliveries are one new delivery per person per run, of the
// run's campaign; only the last purchase has total > 0 (the goal's `where`),
// so each person converts exactly once, on their last event. With one cycle
// this is identify / Email Sent / Email Delivered / page / Order Completed.
//
// The people are split into lanes (one per connection). A lane sends its
// people's events round after round, `perRequest` at a time (so a request
// holds events of that many different people, and every person's events are
// in separate requests), and waits for each answer before its next request:
// a person's next event never races their previous one, so the processing
// times the server stamps follow each person's story. lanes = min(connections,
// people / perRequest), at least 1. Events carry no receivedAt.
import http from 'node:http'
import { parentPort, workerData } from 'node:worker_threads'
import { batchPoster, newLoadResult, recordAnswer } from './post-batch.mjs'

const { writeKey } = workerData
const now = () => performance.timeOrigin + performance.now()
const LIBRARY = { name: '@segment/analytics-node', version: '3.1.0' }
export const EVENTS_PER_CYCLE = 5

/** Person p's event of round r in a run. */
function liveMessage(run, p, r) {
  const userId = `${run.group}-u${p}`
  const c = Math.floor(r / EVENTS_PER_CYCLE)
  const first = c === 0
  const delivery = { delivery_id: `${run.runId}-d${p}`, campaign_id: run.campaignId, email_subject: 'Back in stock' }
  const base = { userId, messageId: `${run.runId}-m${p}-${r}`, timestamp: new Date().toISOString(), context: { library: LIBRARY } }
  switch (r % EVENTS_PER_CYCLE) {
    case 0:
      return { type: 'identify', ...base, traits: { email: `${userId}@example.com`, plan: 'pro', visits: c } }
    case 1:
      return { type: 'track', event: first ? 'Email Sent' : 'Email Opened', ...base, properties: delivery }
    case 2:
      return { type: 'track', event: first ? 'Email Delivered' : 'Email Link Clicked', ...base, properties: delivery }
    case 3:
      return { type: 'page', name: 'Product', ...base, properties: { path: `/p/${(p * 7 + r) % 500}`, url: 'https://shop.example.com/p' } }
    default: {
      const total = c === run.cycles - 1 ? 20 + (p % 200) : 0
      return { type: 'track', event: 'Order Completed', ...base, properties: { order_id: `${run.runId}-o${p}-${c}`, total, currency: 'USD' } }
    }
  }
}

let stopped = false

async function run(msg) {
  const { url, people, cycles, connections, perRequest } = msg
  const post = batchPoster(url, writeKey, 'goalpost-bench-history')
  stopped = false
  const rounds = cycles * EVENTS_PER_CYCLE
  const lanes = Math.max(1, Math.min(connections, Math.floor(people / perRequest)))
  const agent = new http.Agent({ keepAlive: true, maxSockets: lanes, maxFreeSockets: lanes })
  const result = newLoadResult()
  result.lanes = lanes
  const lane = async (l) => {
    // Lane l: people [from, to), their events round-major.
    const from = Math.floor((l * people) / lanes)
    const size = Math.floor(((l + 1) * people) / lanes) - from
    const items = size * rounds
    const chunk = Math.min(perRequest, size)
    for (let j = 0; j < items && !stopped; j += chunk) {
      const batch = []
      for (let i = j; i < Math.min(items, j + chunk); i++) batch.push(liveMessage(msg, from + (i % size), Math.floor(i / size)))
      const sentAt = now()
      if (sentAt < result.firstRequestAt) result.firstRequestAt = sentAt
      const res = await post(agent, Buffer.from(JSON.stringify({ batch, sentAt: new Date(sentAt).toISOString() })))
      recordAnswer(result, res, batch.length, sentAt, now())
    }
  }
  await Promise.all(Array.from({ length: lanes }, (_, l) => lane(l)))
  agent.destroy()
  result.stopped = stopped
  return result
}

parentPort.on('message', async (msg) => {
  if (msg.cmd === 'stop') stopped = true
  if (msg.cmd !== 'run') return
  try {
    parentPort.postMessage({ type: 'done', id: msg.id, result: await run(msg) })
  } catch (err) {
    parentPort.postMessage({ type: 'error', id: msg.id, error: String(err?.stack ?? err) })
  }
})
