/**
 * Conversion-engine benchmark: `npm run bench:engine` (also run by `npm run bench`
 * after the ingest bench).
 *
 * Starts goalpost (`serve` + `worker`, compiled into bench/.build/worktree like
 * bench/ingest.ts's default) on a database and queue prefix of its own, with a
 * generated configuration of 10 campaigns applied at start (GOALPOST_CONFIG):
 * audience filters on attributes, Cart Abandoned triggers (5 campaigns) or
 * delivery entry (5), and an Order Completed goal with a `where`, `within: 7d`,
 * `after: delivered`. Each person sends, in one batch and in processing order:
 * identify (matching traits), Cart Abandoned, Email Sent + Email Delivered of
 * one delivery of their campaign, 5 noise events (track/page), Order Completed
 * (10 events per person, 10 people per batch of 100); each person converts once.
 *
 *   throughput  every person as fast as `concurrency` connections go: events/s
 *               from the first request until `conversions` holds one row per
 *               person (target >= 10,000 events/s);
 *   latency     new people at a steady rate: for each purchase, the time from
 *               its HTTP answer to its conversion row being visible (polled
 *               every 20 ms): p50/p95/p99 (target p99 < 1 s);
 *
 * plus the worker's peak RSS (VmHWM, target < 400 MB) and Redis used_memory
 * before/after each phase (it should not grow with processed jobs).
 *
 * Options (environment variables; `npm run bench -- --flags` go to bench/ingest.ts):
 *   BENCH_ENGINE_WARMUP            people sent first, not measured (2000): JIT, pools, caches; then
 *                                  ANALYZE, as autovacuum would have run by then on a running installation
 *   BENCH_ENGINE_PEOPLE            people in the throughput phase (20000)
 *   BENCH_ENGINE_CONCURRENCY       connections in the throughput phase (16)
 *   BENCH_ENGINE_RATE              events/s in the latency phase (1000)
 *   BENCH_ENGINE_SECONDS           length of the latency phase in seconds (30)
 *   BENCH_ENGINE_PHASES            throughput,latency (both)
 *   BENCH_ENGINE_KEEP=1            keep the database, queue keys and run directory
 *   BENCH_ENGINE_CPU_PROF=1        node --cpu-prof on server and worker; summaries printed, profiles kept in the run directory
 *   BENCH_BUILD                    auto|always|never (auto), as for bench/ingest.ts
 *   BENCH_INGEST_CONCURRENCY       GOALPOST_INGEST_CONCURRENCY for the worker
 *   BENCH_PG_SERVER_URL, BENCH_REDIS_URL
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { formatSummary, summariseProfile } from './cpuprofile.ts'
import os from 'node:os'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { Redis } from 'ioredis'
import {
  BENCH_DIR,
  ROOT,
  compileWorktree,
  dropBenchResources,
  fmt,
  freePort,
  killChildrenOnExit,
  log,
  machineLoad,
  mb,
  now,
  percentile,
  redisUsedMemory,
  sleep,
  startChild,
  stopChild,
  vmHwm,
  waitForLine,
  waitReady,
  type Child,
  type LoadResult,
  checkLoad,
  envInt,
  runInThread,
  goalpostEnv,
} from './lib.ts'

const TARGET_THROUGHPUT = 10_000
const TARGET_P99_MS = 1_000
const TARGET_RSS = 400 * 1024 * 1024
const WRITE_KEY = 'bench-write-key'
const CAMPAIGNS = 10
const EVENTS_PER_PERSON = 10 // bench/engine-loadgen.mjs

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log((await import('node:fs')).readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0])
  process.exit(0)
}
const opts = {
  warmup: Number(process.env.BENCH_ENGINE_WARMUP ?? 2_000),
  people: envInt('BENCH_ENGINE_PEOPLE', 20_000),
  concurrency: envInt('BENCH_ENGINE_CONCURRENCY', 16),
  rate: envInt('BENCH_ENGINE_RATE', 1_000),
  seconds: envInt('BENCH_ENGINE_SECONDS', 30),
  phases: (process.env.BENCH_ENGINE_PHASES || 'throughput,latency').split(',').map((p) => p.trim()),
  keep: !!process.env.BENCH_ENGINE_KEEP,
  cpuProf: !!process.env.BENCH_ENGINE_CPU_PROF,
  build: (process.env.BENCH_BUILD || 'auto') as 'auto' | 'always' | 'never',
  ingestConcurrency: process.env.BENCH_INGEST_CONCURRENCY ?? '',
}
for (const p of opts.phases) if (p !== 'throughput' && p !== 'latency') throw new Error(`BENCH_ENGINE_PHASES: unknown phase "${p}"`)
const PEOPLE_PER_BATCH = 100 / EVENTS_PER_PERSON

const tag = randomBytes(4).toString('hex')
const dbName = `goalpost_bench_${tag}`
const queuePrefix = `gpbench_${tag}`
const pgServer = process.env.BENCH_PG_SERVER_URL ?? 'postgres://postgres@127.0.0.1:5432'
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const databaseUrl = `${pgServer}/${dbName}`
const runDir = path.join(BENCH_DIR, '.runs', `engine-${new Date().toISOString().replace(/[:.]/g, '-')}-${tag}`)
mkdirSync(runDir, { recursive: true })

// --- the configuration ------------------------------------------------------------------

function configDocument() {
  return {
    campaigns: Array.from({ length: CAMPAIGNS }, (_, k) => ({
      key: `bench_c${k}`,
      name: `Bench campaign ${k}`,
      external_ids: [`bcmp-${k}`],
      // Half event-triggered, half entered by their delivery (no trigger).
      ...(k < CAMPAIGNS / 2
        ? { trigger: { event: 'Cart Abandoned', where: { match: 'all', conditions: [{ property: 'cohort', op: 'eq', value: `c${k}` }] } } }
        : {}),
      filters: {
        match: 'all',
        conditions: [
          { attribute: 'cohort', op: 'eq', value: `c${k}` },
          { attribute: 'plan', op: 'in', value: ['pro', 'enterprise'] },
        ],
      },
      goal: {
        event: 'Order Completed',
        where: {
          match: 'all',
          conditions: [
            { property: 'total', op: 'gt', value: 9.99 },
            { property: 'currency', op: 'eq', value: 'USD' },
          ],
        },
        within: '7d',
        after: 'delivered',
        value: 'total',
      },
      exit: 'on_goal',
    })),
  }
}

// --- processes ----------------------------------------------------------------------

const children = new Set<Child>()
killChildrenOnExit(children)
let entry = ''

const childEnv = (extra: Record<string, string> = {}) =>
  goalpostEnv({ databaseUrl, redisUrl, writeKey: WRITE_KEY, queuePrefix, ingestConcurrency: opts.ingestConcurrency }, extra)

let db: pg.Client | undefined
let redis: Redis | undefined
let loadThread: Worker | undefined

async function conversionsCount(): Promise<number> {
  const { rows } = await db!.query<{ n: string }>('SELECT count(*) AS n FROM conversions')
  return Number(rows[0].n)
}

function sendPeople(
  people: number,
  connections: number,
  rate: number,
  idPrefix: string,
  onProgress?: (m: { type: 'sent'; purchases: [string, string][] } | { type: 'answered'; at: number; status: number; purchases: string[] }) => void,
): Promise<LoadResult> {
  return runInThread(loadThread!, { people, peoplePerBatch: PEOPLE_PER_BATCH, connections, rate, cfg: { idPrefix, campaigns: CAMPAIGNS } }, onProgress)
}

async function waitConversions(target: number, watch: Child[], stallMs = 90_000): Promise<number> {
  let last = -1
  let lastMove = Date.now()
  for (;;) {
    const n = await conversionsCount()
    if (n >= target) return now()
    if (n !== last) {
      last = n
      lastMove = Date.now()
    }
    if (Date.now() - lastMove > stallMs) {
      const tails = watch.map((c) => `--- ${c.name} (${c.logFile}) ---\n${c.tail.slice(-15).join('\n')}`).join('\n')
      throw new Error(`conversions stalled at ${n} of ${target} for ${stallMs / 1000} s\n${tails}`)
    }
    for (const c of watch) if (c.proc.exitCode !== null) throw new Error(`${c.name} exited (${c.proc.exitCode}):\n${c.tail.join('\n')}`)
    await sleep(50)
  }
}

// --- the run -----------------------------------------------------------------------------

const out: string[] = []
const say = (s: string) => {
  out.push(s)
  log(s)
}

let cleaningUp: Promise<void> | undefined
function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c, 15_000)))
    await loadThread?.terminate()
    await db?.end().catch(() => {})
    if (!opts.keep) await dropBenchResources(pgServer, dbName, redis, queuePrefix)
    else log(`kept database ${dbName} and queue prefix ${queuePrefix}`)
    redis?.disconnect()
  })()
  return cleaningUp
}
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    log(`${signal}: cleaning up`)
    cleanup().finally(() => process.exit(130))
  })

async function main() {
  log(`engine bench ${tag}: database ${dbName}, queue prefix ${queuePrefix}, logs in ${path.relative(ROOT, runDir)}`)
  log(`machine before: ${machineLoad()}`)
  entry = compileWorktree(opts.build)

  const configFile = path.join(runDir, 'engine-config.yaml')
  writeFileSync(configFile, JSON.stringify(configDocument(), null, 2)) // JSON is YAML
  const migrate = startChild(children, runDir, 'migrate', [entry, 'migrate'], childEnv())
  if ((await migrate.exited) !== 0) throw new Error(`goalpost migrate failed:\n${migrate.tail.join('\n')}`)
  db = new pg.Client({ connectionString: databaseUrl, application_name: 'goalpost-bench-engine' })
  await db.connect()
  redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 })

  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const prof = (name: string) => (opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(runDir, `prof-${name}`)}`] : [])
  const server = startChild(children, runDir, 'server', [...prof('server'), entry, 'serve'], childEnv({ PORT: String(port), GOALPOST_CONFIG: configFile }))
  await waitReady(server, url)
  const { rows: cfgRows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM campaigns WHERE archived_at IS NULL')
  if (Number(cfgRows[0].n) !== CAMPAIGNS) throw new Error(`expected ${CAMPAIGNS} campaigns applied at start, found ${cfgRows[0].n}`)
  const worker = startChild(children, runDir, 'worker', [...prof('worker'), entry, 'worker'], childEnv())
  await waitForLine(worker, 'workers started')
  log(`server pid ${server.proc.pid} on ${url}; worker pid ${worker.proc.pid}; ${CAMPAIGNS} campaigns applied from ${path.relative(ROOT, configFile)}`)
  loadThread = new Worker(new URL('./engine-loadgen.mjs', import.meta.url), { workerData: { url, writeKey: WRITE_KEY } })

  let expected = 0
  if (opts.warmup > 0) {
    const r = await sendPeople(opts.warmup, opts.concurrency, 0, `${tag}-w`)
    checkLoad('warm-up', r)
    expected += opts.warmup
    await waitConversions(expected, [server, worker])
    // A database minutes old has had no autovacuum round yet, so the planner
    // has no statistics; a running installation has them. Measure that.
    await db.query('ANALYZE')
    log(`warm-up: ${fmt(opts.warmup)} people converted (not measured); ANALYZE`)
  }
  const redisStart = await redisUsedMemory(redis)
  const redisRows: string[] = []

  if (opts.phases.includes('throughput')) {
    const events = opts.people * EVENTS_PER_PERSON
    log(`throughput: ${fmt(opts.people)} people, ${fmt(events)} events, ${opts.concurrency} connections, batches of 100`)
    const before = await redisUsedMemory(redis)
    const r = await sendPeople(opts.people, opts.concurrency, 0, `${tag}-t`)
    checkLoad('throughput', r)
    expected += opts.people
    log(`throughput: accepted ${fmt(r.acceptedEvents)} events in ${fmt((r.lastResponseAt - r.firstRequestAt) / 1000, 2)} s; waiting for ${fmt(expected)} conversions`)
    const doneAt = await waitConversions(expected, [server, worker])
    const after = await redisUsedMemory(redis)
    const s = (doneAt - r.firstRequestAt) / 1000
    const rate = r.acceptedEvents / s
    const accepted = r.acceptedEvents / ((r.lastResponseAt - r.firstRequestAt) / 1000)
    const lat = r.latencies.sort((a, b) => a - b)
    say(
      `(1) throughput: ${fmt(r.acceptedEvents)} events (${fmt(opts.people)} people) -> ${fmt(expected)} conversions in ${fmt(s, 2)} s = ${fmt(rate)} events/s ` +
        `(target >= ${fmt(TARGET_THROUGHPUT)}: ${rate >= TARGET_THROUGHPUT ? 'MEETS' : `BELOW (${fmt((100 * rate) / TARGET_THROUGHPUT)}%)`}); ` +
        `HTTP accepted ${fmt(accepted)} events/s, request latency p50 ${fmt(percentile(lat, 50), 1)} / p99 ${fmt(percentile(lat, 99), 1)} ms; ${machineLoad()}`,
    )
    redisRows.push(`throughput: before ${mb(before)}, after ${mb(after)} (${after >= before ? '+' : ''}${mb(after - before)})`)
  }

  if (opts.phases.includes('latency')) {
    const people = Math.ceil((opts.rate * opts.seconds) / EVENTS_PER_PERSON)
    log(`latency: ${fmt(people)} new people at ${fmt(opts.rate)} events/s for ${opts.seconds} s`)
    const before = await redisUsedMemory(redis)
    const pending = new Map<string, string>() // userId -> purchase messageId, sent and not yet seen converted
    const answeredAt = new Map<string, number>() // purchase messageId -> HTTP answer time
    const seenAt = new Map<string, number>() // purchase messageId -> first time its conversion row was visible
    let mismatched = 0
    const poller = new pg.Client({ connectionString: databaseUrl, application_name: 'goalpost-bench-engine-poll' })
    await poller.connect()
    let polling = true
    let stopAt = 0
    let polls = 0
    const pollLoop = (async () => {
      while (polling || pending.size > 0) {
        const t0 = now()
        if (pending.size > 0) {
          // conversions_person index; person_id is the userId for these people (no anonymous ids).
          const { rows } = await poller.query<{ person_id: string; event_message_id: string | null }>(
            'SELECT person_id, event_message_id FROM conversions WHERE person_id = ANY($1::text[])',
            [[...pending.keys()]],
          )
          const at = now()
          polls++
          for (const row of rows) {
            const mid = pending.get(row.person_id)
            if (!mid) continue
            if (row.event_message_id !== mid) mismatched++
            seenAt.set(mid, at)
            pending.delete(row.person_id)
          }
        }
        if (!polling && Date.now() - stopAt > 60_000) break
        await sleep(Math.max(0, 20 - (now() - t0)))
      }
    })()
    const r = await sendPeople(people, opts.concurrency, opts.rate, `${tag}-l`, (m) => {
      if (m.type === 'sent') for (const [userId, mid] of m.purchases) pending.set(userId, mid)
      else if (m.status === 200) for (const mid of m.purchases) answeredAt.set(mid, m.at)
    })
    checkLoad('latency', r)
    expected += people
    const sendS = (r.lastResponseAt - r.firstRequestAt) / 1000
    stopAt = Date.now()
    polling = false
    await pollLoop
    await poller.end()
    await waitConversions(expected, [server, worker], 30_000).catch((err) => log(`latency: ${String(err).split('\n')[0]}`))
    const after = await redisUsedMemory(redis)
    const lats: number[] = []
    let early = 0
    for (const [mid, a] of answeredAt) {
      const s = seenAt.get(mid)
      if (s === undefined) continue
      if (s < a) early++
      lats.push(s - a)
    }
    lats.sort((a, b) => a - b)
    const p99 = percentile(lats, 99)
    say(
      `(2) latency at ${fmt(r.acceptedEvents / sendS)} events/s sent (${fmt(r.acceptedEvents)} events over ${fmt(sendS, 1)} s, asked ${fmt(opts.rate)}/s): ` +
        `HTTP answer -> conversion visible, ${fmt(lats.length)} of ${fmt(answeredAt.size)} purchases seen: ` +
        `p50 ${fmt(percentile(lats, 50))} ms, p95 ${fmt(percentile(lats, 95))} ms, p99 ${fmt(p99)} ms, max ${fmt(percentile(lats, 100))} ms ` +
        `(target p99 < ${fmt(TARGET_P99_MS)} ms: ${p99 < TARGET_P99_MS ? 'MEETS' : 'MISSES'}); polled every 20 ms (${fmt(polls)} polls)` +
        `${early ? `; ${early} seen before their answer arrived (counted as negative)` : ''}${mismatched ? `; ${mismatched} converted on another message than the purchase!` : ''}; ${machineLoad()}`,
    )
    redisRows.push(`latency: before ${mb(before)}, after ${mb(after)} (${after >= before ? '+' : ''}${mb(after - before)})`)
  }

  const workerRss = vmHwm(worker.proc.pid)
  const serverRss = vmHwm(server.proc.pid)
  say(`(3) worker peak RSS (VmHWM) ${mb(workerRss)} (target < 400 MB: ${workerRss < TARGET_RSS ? 'MEETS' : 'MISSES'}); server ${mb(serverRss)}`)
  const redisEnd = await redisUsedMemory(redis)
  let jobKeys = 0
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${queuePrefix}:*`, 'COUNT', 1000)
    cursor = next
    jobKeys += keys.length
  } while (cursor !== '0')
  say(`(4) Redis used_memory (shared instance): start ${mb(redisStart)}, end ${mb(redisEnd)}; ${redisRows.join('; ')}; ${jobKeys} key(s) under ${queuePrefix}:`)
  const { rows } = await db.query<{ events: string; conversions: string; journeys: string; people: string }>(
    `SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM conversions) AS conversions,
            (SELECT count(*) FROM journeys) AS journeys, (SELECT count(*) FROM people) AS people`,
  )
  say(`Postgres: events ${fmt(Number(rows[0].events))}, people ${fmt(Number(rows[0].people))}, journeys ${fmt(Number(rows[0].journeys))}, conversions ${fmt(Number(rows[0].conversions))} (expected ${fmt(expected)})`)

  await Promise.all([...children].map((c) => stopChild(c)))
  const line = '-'.repeat(104)
  console.log(`\n${line}\ngoalpost engine bench  ${CAMPAIGNS} campaigns, ${fmt(opts.people)} people x ${EVENTS_PER_PERSON} events, batches of 100, ${opts.concurrency} connections; ${os.cpus().length} cores, ${machineLoad()} at the end\n${line}`)
  for (const s of out) console.log(s)
  console.log(line)
  if (opts.cpuProf)
    for (const name of ['server', 'worker']) {
      const dir = path.join(runDir, `prof-${name}`)
      for (const f of existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [])
        console.log(`\nCPU profile ${name}: ${formatSummary(summariseProfile(path.join(dir, f)))}`)
    }
}

main()
  .then(async () => {
    await cleanup()
    if (!opts.keep && !opts.cpuProf) rmSync(runDir, { recursive: true, force: true })
    process.exit(0)
  })
  .catch(async (err) => {
    console.error(`\nengine bench failed: ${err instanceof Error ? err.stack ?? err.message : err}`)
    for (const s of out) console.log(s)
    await cleanup().catch(() => {})
    writeFileSync(path.join(runDir, 'error.txt'), String(err instanceof Error ? err.stack : err))
    log(`logs kept in ${path.relative(ROOT, runDir)}`)
    process.exit(1)
  })
