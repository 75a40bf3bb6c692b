/**
 * Outbox bench (docs/outbound.md): prints
 * 1. the added cost per conversion on the write path: writeIncremental of the
 *    same evaluations with and without a destination, alternated, in
 *    transactions of 500 people (each a journey and a conversion);
 * 2. forwarding throughput: a drain of 20,000 pending conversions through
 *    @segment/analytics-node to a local collector, and of 5,000 to a local
 *    webhook receiver.
 *
 *   npx tsx bench/outbox.ts [--people 500] [--rounds 20] [--rows 20000]
 *
 * On a database of its own (goalpost_bench_outbox_<random>), dropped at the end.
 */
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { createDb } from '../src/db/knex.ts'
import { migrateToLatest } from '../src/db/migrate.ts'
import { writeIncremental } from '../src/db/evaluation.ts'
import type { PersonEvaluation } from '../src/core/evaluate-person.ts'
import { outboundRouting } from '../src/outbox/routing.ts'
import { drainOutbox } from '../src/outbox/drain.ts'
import { fmt, log } from './lib.ts'

const { values } = parseArgs({ options: { people: { type: 'string', default: '500' }, rounds: { type: 'string', default: '20' }, rows: { type: 'string', default: '20000' } } })
const PEOPLE = Number(values.people)
const ROUNDS = Number(values.rounds)
const ROWS = Number(values.rows)
const SERVER = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432'
const name = `goalpost_bench_outbox_${randomUUID().slice(0, 8)}`

async function admin(sql: string) {
  const c = new pg.Client({ connectionString: `${SERVER}/postgres` })
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

/** One incremental evaluation per person: a journey entered and converted (what a converting input writes). */
function evaluations(round: number, at: number): Map<string, PersonEvaluation> {
  const out = new Map<string, PersonEvaluation>()
  for (let i = 0; i < PEOPLE; i++) {
    const person = `r${round}-p${i}`
    const journeyId = `j_${round}_${i}_${randomUUID().slice(0, 8)}`
    out.set(person, {
      mode: 'incremental',
      memberships: [],
      journeys: [{ journeyId, campaignKey: 'cart', enteredAt: at - 60_000, entryCause: 'event_trigger', entryMessageId: `m-${journeyId}`, goalVersion: 1, exitedAt: null, exitReason: null, completedAt: null, convertedAt: at }],
      deliveries: [],
      conversions: [{ journeyId, campaignKey: 'cart', deliveryId: `d-${journeyId}`, goalVersion: 1, goalType: 'event', eventMessageId: `o-${journeyId}`, convertedAt: at, anchorAt: at - 30_000, attributedVia: 'delivered', channel: 'email', value: 42 }],
      decisions: [],
      created: { memberships: 0, journeys: 1, deliveries: 0 },
      nextWakeAt: null,
    } as unknown as PersonEvaluation)
  }
  return out
}

async function listen(handler: Parameters<typeof createServer>[1]) {
  const server = createServer(handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))) }
}

const drainBody = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, status: number) => {
  req.on('data', () => undefined)
  req.on('end', () => res.writeHead(status, { 'content-type': 'application/json' }).end('{"success":true}'))
}

async function main() {
  await admin(`CREATE DATABASE ${name}`)
  const url = `${SERVER}/${name}`
  const db = createDb(url, { poolMax: 4 })
  try {
    await migrateToLatest(url)
    log(`write path: ${ROUNDS} rounds of ${PEOPLE} conversions per transaction, alternated without / with a destination`)
    const routing = outboundRouting(true, [])
    const ms = { off: [] as number[], on: [] as number[] }
    for (let round = 0; round < ROUNDS * 2; round++) {
      const mode = round % 2 === 0 ? 'off' : 'on'
      const results = evaluations(round, Date.now())
      const t0 = performance.now()
      await db.transaction((trx) => writeIncremental(trx, results, mode === 'on' ? routing : null))
      if (round >= 2) ms[mode].push(performance.now() - t0) // first pair: warm-up
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
    const perConv = (x: number) => (x * 1000) / PEOPLE
    log(`  without: ${fmt(median(ms.off), 1)} ms per transaction (${fmt(perConv(median(ms.off)), 1)} µs per conversion)`)
    log(`  with:    ${fmt(median(ms.on), 1)} ms per transaction (${fmt(perConv(median(ms.on)), 1)} µs per conversion)`)
    log(`  added:   ${fmt(perConv(median(ms.on) - median(ms.off)), 1)} µs per conversion (medians), one INSERT per transaction`)

    // Forwarding throughput: the rows the write path left, plus more, drained to a local collector.
    await db.raw(
      `INSERT INTO outbox (person_id, destination, change, journey_id, campaign_key, payload)
       SELECT 'p' || g, 'segment', 'conversion_recorded', 'j_' || g, 'cart', jsonb_build_object('journey_id', 'j_' || g, 'campaign_key', 'cart', 'person_id', 'p' || g,
              'delivery_id', 'd' || g, 'goal_version', 1, 'goal_type', 'event', 'event_message_id', 'm' || g, 'converted_at', now(), 'anchor_at', now(),
              'attributed_via', 'delivered', 'channel', 'email', 'value', 42)
         FROM generate_series(1, ?) g`,
      [ROWS],
    )
    const pending = Number((await db('outbox').whereNull('sent_at').count({ n: '*' }))[0].n)
    const collector = await listen((req, res) => drainBody(req, res, 200))
    let t0 = performance.now()
    let sent = 0
    while (sent < pending) sent += (await drainOutbox({ db, segment: { writeKey: 'bench', host: collector.url }, webhooks: async () => [], sendTimeoutMs: 30_000 })).sent
    let s = (performance.now() - t0) / 1000
    log(`Segment (analytics-node, local collector): ${fmt(sent)} conversions in ${fmt(s, 1)} s = ${fmt(sent / s)} /s`)
    await collector.close()

    const receiver = await listen((req, res) => drainBody(req, res, 204))
    const hooks = [{ name: 'bench', url: receiver.url, events: ['conversion_recorded' as const], secretEnv: 'BENCH_WEBHOOK_SECRET' }]
    const n = Math.round(ROWS / 4)
    await db.raw(
      `INSERT INTO outbox (person_id, destination, change, journey_id, campaign_key, payload)
       SELECT 'p' || g, 'webhook:bench', 'conversion_recorded', 'j_' || g, 'cart', jsonb_build_object('journey_id', 'j_' || g, 'value', 42)
         FROM generate_series(1, ?) g`,
      [n],
    )
    t0 = performance.now()
    sent = 0
    while (sent < n) sent += (await drainOutbox({ db, segment: null, webhooks: async () => hooks, sendTimeoutMs: 30_000, env: { BENCH_WEBHOOK_SECRET: 's' } })).sent
    s = (performance.now() - t0) / 1000
    log(`webhooks (signed, 8 at once, local receiver): ${fmt(sent)} changes in ${fmt(s, 1)} s = ${fmt(sent / s)} /s`)
    await receiver.close()
  } finally {
    await db.destroy()
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
