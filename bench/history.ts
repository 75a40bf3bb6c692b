/**
 * Evaluation cost against history depth: `npm run bench:history` (also run by
 * `npm run bench` after the engine bench; bench/README.md describes it).
 *
 * goalpost runs on a database and queue prefix of its own, with campaigns
 * entered by delivery whose goal is Order Completed where total > 0, within
 * 7d after delivered (bench/history-gen.ts). For each depth D, on people of
 * its own, in each topology (`start`, or `serve` + `worker`; started afresh
 * and warmed up for every phase):
 *
 *   1. baseline: live traffic on the group (bench/history-loadgen.mjs), events/s
 *      from the first request until `events` holds every event and
 *      `conversions` one new row per person (each converts on their last event);
 *   2. `goalpost import` of D earlier events a person: messages/s (wall time);
 *   3. the group again: events/s, the ratio to the baseline (target >= 90 %)
 *      and to a twin group measured just before (the same live runs, no
 *      import), and the worker's peak RSS (VmHWM of `start`, or of `worker`).
 *
 * Also: an import-only rate, and the stored per-person state at each depth
 * and for small groups at 10 / 1,000 / 10,000 earlier events. A live run or
 * import longer than the time limit is stopped and reported as timed out.
 *
 * Options (environment variables):
 *   BENCH_HISTORY_TOPOLOGIES       start,split (both)
 *   BENCH_HISTORY_DEPTHS           depth:people,... (0:2000,400:2000,5000:200)
 *   BENCH_HISTORY_LIVE_EVENTS      events per live run and group (40000), in whole cycles of 5 per person
 *   BENCH_HISTORY_IMPORT_MESSAGES  size of the import-only file (1000000; 0: skip)
 *   BENCH_HISTORY_IMPORT_DEPTH     its messages per person (100)
 *   BENCH_HISTORY_STATE_DEPTHS     depths of the state-size groups (10,1000,10000; empty: skip)
 *   BENCH_HISTORY_STATE_PEOPLE     people in each state-size group (5)
 *   BENCH_HISTORY_FILE_ORDER       time (the people interleaved, by receivedAt) | person (each person's history together)
 *   BENCH_HISTORY_WARMUP           new people sent after each start, not measured (1000; 0: none)
 *   BENCH_HISTORY_CONCURRENCY      connections (16; lanes = min(this, people / 100))
 *   BENCH_HISTORY_TIMEOUT          seconds a live run or an import may take (240)
 *   BENCH_HISTORY_KEEP=1           keep the database and the run directory (history files included)
 *   BENCH_HISTORY_PROFILE=1        per phase, the worker's SQL time per statement and CPU profile (run directory kept)
 *   BENCH_BUILD, BENCH_INGEST_CONCURRENCY, BENCH_PG_SERVER_URL, BENCH_REDIS_URL: as for bench/engine.ts
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { Redis } from 'ioredis'
import { BENCH_DIR, ROOT, checkLoad, compileWorktree, dropBenchResources, envInt, fmt, formatPgTiming, freePort, goalpostEnv, killChildrenOnExit, log, machineLoad, mb } from './lib.ts'
import { formatSummary, summariseProfile } from './cpuprofile.ts'
import { cpuMsPer1000, cpuReading, formatTable, now, runInThread, percentile, sleep, startChild, stopChild, unlinkQueueKeys, vmHwm, waitForLine, waitReady, type Child, type LoadResult } from './lib.ts'
import { HISTORY_CYCLE, WARM_CAMPAIGN, configDocument, liveCampaign, writeHistoryFile, type HistoryGroup } from './history-gen.ts'

const TARGET_BASELINE = 12_000
const TARGET_RATIO = 0.9
const TARGET_IMPORT = 50_000
const TARGET_RSS = 400 * 1024 * 1024
const WRITE_KEY = 'bench-write-key'
const EVENTS_PER_CYCLE = 5 // bench/history-loadgen.mjs
const PER_REQUEST = 100

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0])
  process.exit(0)
}
const list = (env: string, dflt: string) => (process.env[env] ?? dflt).split(',').map((s) => s.trim()).filter(Boolean)
const opts = {
  topologies: list('BENCH_HISTORY_TOPOLOGIES', 'start,split'),
  depths: list('BENCH_HISTORY_DEPTHS', '0:2000,400:2000,5000:200').map((s) => {
    const [depth, people] = s.split(':').map(Number)
    if (!Number.isInteger(depth) || depth < 0 || !Number.isInteger(people) || people < 1) throw new Error(`BENCH_HISTORY_DEPTHS: "${s}" is not depth:people`)
    return { depth, people }
  }),
  liveEvents: envInt('BENCH_HISTORY_LIVE_EVENTS', 40_000),
  importMessages: envInt('BENCH_HISTORY_IMPORT_MESSAGES', 1_000_000, 0),
  importDepth: envInt('BENCH_HISTORY_IMPORT_DEPTH', 100),
  stateDepths: list('BENCH_HISTORY_STATE_DEPTHS', '10,1000,10000').map(Number),
  statePeople: envInt('BENCH_HISTORY_STATE_PEOPLE', 5),
  order: (process.env.BENCH_HISTORY_FILE_ORDER || 'time') as 'time' | 'person',
  warmup: envInt('BENCH_HISTORY_WARMUP', 1_000, 0),
  concurrency: envInt('BENCH_HISTORY_CONCURRENCY', 16),
  timeoutMs: envInt('BENCH_HISTORY_TIMEOUT', 240) * 1000,
  keep: !!process.env.BENCH_HISTORY_KEEP,
  profile: !!process.env.BENCH_HISTORY_PROFILE,
  build: (process.env.BENCH_BUILD || 'auto') as 'auto' | 'always' | 'never',
  ingestConcurrency: process.env.BENCH_INGEST_CONCURRENCY ?? '',
}
for (const t of opts.topologies) if (t !== 'start' && t !== 'split') throw new Error(`BENCH_HISTORY_TOPOLOGIES: unknown topology "${t}"`)
if (opts.order !== 'time' && opts.order !== 'person') throw new Error(`BENCH_HISTORY_FILE_ORDER: time or person, not "${opts.order}"`)
for (const d of opts.stateDepths) if (!Number.isInteger(d) || d < 1) throw new Error(`BENCH_HISTORY_STATE_DEPTHS: "${d}" is not a positive integer`)

const tag = randomBytes(4).toString('hex')
const dbName = `goalpost_bench_${tag}`
const queuePrefix = `gpbench_${tag}`
const pgServer = process.env.BENCH_PG_SERVER_URL ?? 'postgres://postgres@127.0.0.1:5432'
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const databaseUrl = `${pgServer}/${dbName}`
const runDir = path.join(BENCH_DIR, '.runs', `history-${new Date().toISOString().replace(/[:.]/g, '-')}-${tag}`)
mkdirSync(runDir, { recursive: true })

const children = new Set<Child>()
killChildrenOnExit(children)
let entry = ''
let configFile = ''
let db: pg.Client | undefined
let pollPid = 0 // the bench's own backend
let redis: Redis | undefined
let loadThread: Worker | undefined
const childEnv = (extra: Record<string, string> = {}) =>
  goalpostEnv({ databaseUrl, redisUrl, writeKey: WRITE_KEY, queuePrefix, ingestConcurrency: opts.ingestConcurrency }, extra)
const q = async (sql: string, params: unknown[] = []) => (await db!.query(sql, params)).rows[0]
/** The last seq handed out (the identity's sequence; read without touching `events`). */
const lastSeq = async () => Number((await q(`SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0) AS n`)).n)
const storedSince = async (seq: number) => Number((await q('SELECT count(*) AS n FROM events WHERE seq > $1', [seq])).n)
const peopleOf = (g: HistoryGroup) => Array.from({ length: g.people }, (_, p) => `${g.group}-u${p}`)

// --- goalpost processes ----------------------------------------------------------------------

/** Running goalpost processes; `worker` runs the workers: `start`, or `worker` in split. */
type Running = { url: string; worker: Child; all: Child[] }

/** BENCH_HISTORY_PROFILE: the worker's SQL time per statement (bench/pg-timing.mjs) and CPU profile. */
const profiled = (name: string) =>
  opts.profile ? ['--import', pathToFileURL(path.join(BENCH_DIR, 'pg-timing.mjs')).href, '--cpu-prof', `--cpu-prof-dir=${path.join(runDir, `prof-${name}`)}`] : []
const profileEnv = (name: string): Record<string, string> => (opts.profile ? { BENCH_PG_TIMING_OUT: path.join(runDir, `pg-timing-${name}.json`) } : {})

function printProfile(name: string) {
  const dir = path.join(runDir, `prof-${name}`)
  console.log(`\n${formatPgTiming(path.join(runDir, `pg-timing-${name}.json`), `${name} (warm-up included)`, 8)}`)
  for (const f of existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [])
    console.log(`CPU profile ${name}: ${formatSummary(summariseProfile(path.join(dir, f)), 8, 12)}`)
}

async function startGoalpost(topology: string, name: string): Promise<Running> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const httpEnv = childEnv({ PORT: String(port), GOALPOST_CONFIG: configFile })
  if (topology === 'start') {
    const start = startChild(children, runDir, `${name}-start`, [...profiled(name), entry, 'start'], { ...httpEnv, ...profileEnv(name) })
    await waitReady(start, url)
    await waitForLine(start, 'workers started')
    return { url, worker: start, all: [start] }
  }
  const server = startChild(children, runDir, `${name}-serve`, [entry, 'serve'], httpEnv)
  await waitReady(server, url)
  const worker = startChild(children, runDir, `${name}-worker`, [...profiled(name), entry, 'worker'], childEnv(profileEnv(name)))
  await waitForLine(worker, 'workers started')
  return { url, worker, all: [server, worker] }
}

// --- a live run ---------------------------------------------------------------------------------

/** A live run: its events, how many were stored (fewer when it timed out) at `rate` a second, CPU ms per 1,000 stored. */
type Live = { events: number; stored: number; seconds: number; rate: number; timedOut: boolean; load: LoadResult & { lanes: number }; cpu: { goalpost: number; postgres: number } }
// The goalpost processes and the bench database's Postgres processes, not the bench's own connection.
const cpuNow = (running: Running) => cpuReading(running.all.map((c) => c.proc.pid), dbName, [pollPid])

const send = (running: Running, g: HistoryGroup, campaignId: string, runId: string, cycles: number) =>
  runInThread<Live['load']>(loadThread!, { url: running.url, group: g.group, people: g.people, cycles, campaignId, runId, connections: opts.concurrency, perRequest: PER_REQUEST })

/** Sends a live run to group g in a campaign and waits until every event is stored and every person converted. */
async function liveRun(running: Running, g: HistoryGroup, campaign: { key: string; externalId: string }, runId: string, cycles: number): Promise<Live> {
  const events = g.people * cycles * EVENTS_PER_CYCLE
  const startSeq = await lastSeq()
  const convSql = 'SELECT count(*) AS n FROM conversions WHERE campaign_key = $1 AND person_id = ANY($2)'
  const people = peopleOf(g)
  const converted = async () => Number((await q(convSql, [campaign.key, people])).n)
  if ((await converted()) > 0) throw new Error(`${runId}: ${g.group} already converted in ${campaign.key}`)
  const cpu0 = cpuNow(running)
  const t0 = now()
  let loadDone = false
  const sending = send(running, g, campaign.externalId, runId, cycles).finally(() => (loadDone = true))
  let stored = 0
  let doneAt = 0
  while (now() - t0 < opts.timeoutMs) {
    for (const c of running.all) if (c.proc.exitCode !== null) throw new Error(`${c.name} exited (${c.proc.exitCode}):\n${c.tail.join('\n')}`)
    // seq has no gaps but for rolled-back inserts: count only once it can be done.
    if ((await lastSeq()) - startSeq >= events) stored = await storedSince(startSeq)
    if (stored >= events && (await converted()) >= g.people) {
      doneAt = now()
      break
    }
    await sleep(loadDone ? 50 : 100)
  }
  if (!doneAt) loadThread!.postMessage({ cmd: 'stop' })
  const load = await sending
  checkLoad(runId, load)
  const end = doneAt || now()
  const cpu1 = cpuNow(running)
  if (!doneAt) stored = await storedSince(startSeq)
  const seconds = (end - load.firstRequestAt) / 1000
  const n = doneAt ? events : stored
  return { events, stored: n, seconds, rate: n / seconds, timedOut: !doneAt, load, cpu: cpuMsPer1000(cpu0, cpu1, n) }
}

let warmups = 0
let analyzed = false
async function warmUp(running: Running) {
  if (opts.warmup === 0) return
  const g = { group: `w${warmups++}`, people: opts.warmup, depth: 0 }
  const r = await liveRun(running, g, WARM_CAMPAIGN, `warm${warmups}`, 1)
  if (r.timedOut) throw new Error(`warm-up timed out after ${fmt(r.seconds)} s`)
}

/**
 * Live runs in a fresh goalpost of `topology`: start, warm up, each run in the
 * run's campaign (the worker's peak RSS read after each), stop.
 */
async function phase(topology: string, runs: { g: HistoryGroup; run: 'base' | 'hist' }[], cycles: number) {
  const name = `${runs.at(-1)!.g.group}-${topology}-${runs.at(-1)!.run}`
  const running = await startGoalpost(topology, name)
  try {
    await warmUp(running)
    if (!analyzed) await db!.query('ANALYZE') // a running installation has planner statistics (imports analyze too)
    analyzed = true
    const out: (Live & { rss: number })[] = []
    for (const { g, run } of runs) {
      const runName = `${g.group}-${topology}-${run}`
      const live = await liveRun(running, g, liveCampaign(topology, run), runName, cycles)
      const rss = vmHwm(running.worker.proc.pid)
      const lat = live.load.latencies.sort((a, b) => a - b)
      log(
        `${runName}: ${fmt(live.stored)} events in ${fmt(live.seconds, 2)} s = ${fmt(live.rate)} events/s end to end${live.timedOut ? ` (TIMED OUT after ${opts.timeoutMs / 1000} s)` : ''}; ` +
          `${live.load.lanes} connection(s), request latency p50 ${fmt(percentile(lat, 50), 1)} / p99 ${fmt(percentile(lat, 99), 1)} ms; ` +
          `CPU ms per 1,000 events: goalpost ${fmt(live.cpu.goalpost)}, Postgres ${fmt(live.cpu.postgres)}; worker peak RSS ${mb(rss)}${running.all.length > 1 ? `, server ${mb(vmHwm(running.all[0].proc.pid))}` : ''}; ${machineLoad()}`,
      )
      out.push({ ...live, rss })
    }
    return out
  } finally {
    await Promise.all(running.all.map((c) => stopChild(c)))
    // A timed-out run leaves jobs behind: the next phase starts on an empty queue.
    await unlinkQueueKeys(redis!, queuePrefix)
    if (opts.profile) printProfile(name)
  }
}

// --- imports and state ----------------------------------------------------------------------------

async function importHistory(label: string, groups: HistoryGroup[]) {
  const file = path.join(runDir, `${label}.jsonl`)
  let t = now()
  const lines = writeHistoryFile(file, groups, opts.order, Date.now())
  log(`${label}: wrote ${fmt(lines)} messages (${opts.order} order) in ${fmt((now() - t) / 1000, 1)} s; goalpost import ...`)
  const startSeq = await lastSeq()
  t = now()
  const child = startChild(children, runDir, `import-${label}`, [...profiled(`import-${label}`), entry, 'import', file], childEnv(profileEnv(`import-${label}`)))
  let timedOut = false
  const timer = setTimeout(() => ((timedOut = true), stopChild(child, 10_000)), opts.timeoutMs)
  const code = await child.exited
  clearTimeout(timer)
  const seconds = (now() - t) / 1000
  if (code !== 0 && !timedOut) throw new Error(`goalpost import exited ${code}:\n${child.tail.join('\n')}`)
  if (!opts.keep) rmSync(file, { force: true })
  if (opts.profile) printProfile(`import-${label}`)
  const summary = child.tail.find((l) => l.startsWith('imported ')) ?? '(no summary: stopped)'
  const stored = timedOut ? await storedSince(startSeq) : lines
  const r = { lines: stored, seconds, rate: stored / seconds, timedOut }
  log(`${label}: ${fmt(r.lines)} messages in ${fmt(seconds, 1)} s = ${fmt(r.rate)} messages/s${timedOut ? ` (TIMED OUT after ${opts.timeoutMs / 1000} s; stored so far counted)` : ''}: ${summary}`)
  // What autovacuum does soon after a large import on a running installation;
  // left to it, it would run during the next live run and bill it.
  await db!.query('VACUUM (ANALYZE)')
  analyzed = true
  return r
}

/**
 * State bytes per person as stored, avg / max (pg_column_size: after TOAST
 * compresses a value over ~2 KB, so it need not grow with the state), the
 * average as JSON text, and how many people have one when not all do.
 */
async function stateSize(g: HistoryGroup) {
  const sizes = 'avg(pg_column_size(state))::float AS avg, max(pg_column_size(state)) AS max, avg(length(state::text))::float AS text, count(state) AS n'
  const r = await q(`SELECT ${sizes} FROM person_evaluations WHERE person_id = ANY($1)`, [peopleOf(g)])
  const n = Number(r.n)
  return n === 0 ? 'n/a' : `${fmt(r.avg)} / ${fmt(r.max)} B (text ${fmt(r.text)})${n < g.people ? ` (${n} of ${g.people} people)` : ''}`
}

const historyPerPerson = async (g: HistoryGroup) => Number((await q('SELECT count(*) AS n FROM events WHERE person_id = ANY($1)', [peopleOf(g)])).n) / g.people

// --- the run ---------------------------------------------------------------------------------------

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

const rows: string[][] = []
const notes: string[] = []
const pct = (x: number) => `${fmt(100 * x)} %`
const rate = (r: { rate: number; timedOut: boolean }) => `${fmt(r.rate)}${r.timedOut ? ' (timed out)' : ''}`

async function main() {
  log(`history bench ${tag}: database ${dbName}, queue prefix ${queuePrefix}, logs in ${path.relative(ROOT, runDir)}`)
  log(`machine before: ${machineLoad()}`)
  entry = compileWorktree(opts.build)
  configFile = path.join(runDir, 'history-config.yaml')
  writeFileSync(configFile, JSON.stringify(configDocument(opts.topologies), null, 2)) // JSON is YAML
  const migrate = startChild(children, runDir, 'migrate', [entry, 'migrate'], childEnv())
  if ((await migrate.exited) !== 0) throw new Error(`goalpost migrate failed:\n${migrate.tail.join('\n')}`)
  // Imports read the configuration from the database, and the import-only
  // measure runs before any goalpost process: apply it now. Every start
  // applies the same file again (GOALPOST_CONFIG), which changes nothing.
  const apply = startChild(children, runDir, 'apply', [entry, 'apply', configFile], childEnv())
  if ((await apply.exited) !== 0) throw new Error(`goalpost apply failed:\n${apply.tail.join('\n')}`)
  db = new pg.Client({ connectionString: databaseUrl, application_name: 'goalpost-bench-history' })
  await db.connect()
  pollPid = (await q('SELECT pg_backend_pid() AS pid')).pid
  redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 })
  loadThread = new Worker(new URL('./history-loadgen.mjs', import.meta.url), { workerData: { writeKey: WRITE_KEY } })

  if (opts.importMessages > 0) {
    const people = Math.ceil(opts.importMessages / opts.importDepth)
    const r = await importHistory('import-only', [{ group: 'imp', people, depth: opts.importDepth }])
    notes.push(
      `import only: ${fmt(r.lines)} messages (${fmt(people)} people x ${opts.importDepth}) in ${fmt(r.seconds, 1)} s = ${rate(r)} messages/s ` +
        `(target >= ${fmt(TARGET_IMPORT)}: ${r.rate >= TARGET_IMPORT && !r.timedOut ? 'MEETS' : 'BELOW'})`,
    )
  }

  for (const { depth, people } of opts.depths) {
    const g: HistoryGroup = { group: `d${depth}`, people, depth }
    const cycles = Math.max(1, Math.round(opts.liveEvents / (people * EVENTS_PER_CYCLE)))
    log(`depth ${fmt(depth)}: ${fmt(people)} people, live runs of ${fmt(people * cycles * EVENTS_PER_CYCLE)} events (${cycles * EVENTS_PER_CYCLE} a person)`)
    // The twin: as many other people, given every live run the group gets (in the same goalpost,
    // just before it) but not the import. With history / twin is the history's effect alone: the
    // live runs' own journeys, the database's growth and the machine's drift are the same for both.
    const twin: HistoryGroup = { group: `t${depth}`, people, depth: 0 }
    const base = new Map<string, Live>()
    for (const t of opts.topologies) base.set(t, (await phase(t, [{ g: twin, run: 'base' }, { g, run: 'base' }], cycles))[1])
    const imported = depth > 0 ? await importHistory(`history-d${depth}`, [g]) : undefined
    const stored = await historyPerPerson(g)
    const states = Number((await q('SELECT count(state) AS n FROM person_evaluations WHERE person_id = ANY($1)', [peopleOf(g)])).n)
    log(`depth ${fmt(depth)}: ${fmt(stored)} stored events a person before the live runs with history; state ${await stateSize(g)}`)
    if (states < people)
      notes.push(`depth ${fmt(depth)}: ${fmt(people - states)} of ${fmt(people)} people had no stored state after the import (it did not finish?): their first live input replays the whole log`)
    for (const t of opts.topologies) {
      const [c, h] = await phase(t, [{ g: twin, run: 'hist' }, { g, run: 'hist' }], cycles)
      const b = base.get(t)!
      const ratio = h.rate / b.rate
      const verdict = h.timedOut || b.timedOut ? '(timed out)' : ratio >= TARGET_RATIO ? 'ok' : 'LOW'
      const cpu = (l: Live) => fmt(l.cpu.goalpost + l.cpu.postgres)
      const row = [fmt(depth), fmt(stored), fmt(people), fmt(h.events), `${rate(b)} ${b.rate >= TARGET_BASELINE ? 'ok' : 'LOW'}`, rate(h), `${pct(ratio)} ${verdict}`]
      rows.push([t, ...row, rate(c), pct(h.rate / c.rate), `${cpu(b)} / ${cpu(c)} / ${cpu(h)}`, imported ? rate(imported) : '-', `${mb(h.rss)} ${h.rss < TARGET_RSS ? 'ok' : 'HIGH'}`, await stateSize(g)])
    }
  }

  if (opts.stateDepths.length > 0) {
    const groups = opts.stateDepths.map((depth) => ({ group: `s${depth}`, people: opts.statePeople, depth }))
    await importHistory('state-groups', groups)
    // A live delivery and conversion each, so the state is one a live evaluation wrote.
    const running = await startGoalpost(opts.topologies[0], 'state')
    try {
      for (const g of groups) {
        const r = await liveRun(running, g, WARM_CAMPAIGN, `state-${g.group}`, 1)
        notes.push(`state after ${fmt(g.depth)} earlier events (+5 live), ${g.people} people: ${await stateSize(g)} avg / max${r.timedOut ? ' (live run timed out)' : ''}`)
      }
    } finally {
      await Promise.all(running.all.map((c) => stopChild(c)))
    }
  }

  const counts = await q('SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM conversions) AS conversions, (SELECT count(*) FROM people) AS people')
  const head = ['topology', 'depth', 'stored/person', 'people', 'live events', 'baseline ev/s', 'with history ev/s', 'ratio', 'twin ev/s', 'hist/twin', 'cpu-ms/1k base/twin/hist', 'import msg/s', 'worker RSS', 'state stored avg / max']
  const table = formatTable(head, rows)
  const line = '-'.repeat(table.split('\n')[0].length)
  console.log(`\n${line}\ngoalpost history bench  ${os.cpus().length} cores, ${machineLoad()} at the end; file order ${opts.order}, ${opts.concurrency} connections max, requests of ${PER_REQUEST} people`)
  console.log(`targets: baseline >= ${fmt(TARGET_BASELINE)} events/s (spread traffic); with history >= ${pct(TARGET_RATIO)} of baseline; import >= ${fmt(TARGET_IMPORT)} messages/s; worker RSS < ${mb(TARGET_RSS)}\n${line}`)
  console.log(`${table}\n${line}`)
  for (const n of notes) console.log(n)
  console.log(`history cycle: ${HISTORY_CYCLE} relevant events (identify, Email Sent/Delivered/Opened/Link Clicked, Order Completed); Postgres at the end: events ${fmt(Number(counts.events))}, people ${fmt(Number(counts.people))}, conversions ${fmt(Number(counts.conversions))}`)
  console.log(line)
}

main()
  .then(async () => {
    await cleanup()
    if (!opts.keep && !opts.profile) rmSync(runDir, { recursive: true, force: true })
    process.exit(0)
  })
  .catch(async (err) => {
    if (cleaningUp) return // Ctrl-C: the signal handler cleans up and exits
    console.error(`\nhistory bench failed: ${err instanceof Error ? (err.stack ?? err.message) : err}`)
    await cleanup().catch(() => {})
    writeFileSync(path.join(runDir, 'error.txt'), String(err instanceof Error ? err.stack : err))
    log(`logs kept in ${path.relative(ROOT, runDir)}`)
    process.exit(1)
  })
