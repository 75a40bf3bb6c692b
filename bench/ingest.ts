/**
 * Ingest benchmark: `npm run bench [-- options]`.
 *
 * Starts goalpost as separate processes (`goalpost serve` and `goalpost
 * worker`, compiled build by default) on a database and queue prefix of its
 * own, drives POST /v1/batch with Segment-shaped batches over keep-alive
 * connections from a worker thread, and reports:
 *
 *   combined  server + worker running: accepted events/s (HTTP 200) and
 *             persisted end-to-end events/s (first request -> the last row in
 *             `events`; people and deliveries are written in the same
 *             transaction);
 *   split     no worker: accepted-only events/s while the queue fills, then a
 *             worker is started and the drain rate measured (HTTP cost vs
 *             persist cost);
 *
 * with peak RSS (VmHWM) of the server and worker processes, Redis used_memory
 * before/peak/after, HTTP latency percentiles and how CPU time splits between
 * server, worker, Postgres, Redis and the load generator.
 *
 * Options (flag, or environment variable):
 *   --events N             BENCH_EVENTS            measured events per phase (300000)
 *   --warmup N             BENCH_WARMUP            warm-up events, not measured (20000)
 *   --batch-size N         BENCH_BATCH_SIZE        messages per request (100)
 *   --concurrency N        BENCH_CONCURRENCY       concurrent HTTP connections (16)
 *   --threads N            BENCH_THREADS           load generator threads (1)
 *   --users N              BENCH_USERS             distinct userIds (50000)
 *   --phases LIST          BENCH_PHASES            combined,split (both)
 *   --workers N            BENCH_WORKERS           worker processes (1)
 *   --topology split|start BENCH_TOPOLOGY          split: `goalpost serve` + `goalpost worker` processes (default);
 *                                                 start: one `goalpost start` process (HTTP and workers, as `npm start`
 *                                                 runs on one machine); its CPU shows as "server"; combined phase only
 *   --ingest-concurrency N BENCH_INGEST_CONCURRENCY GOALPOST_INGEST_CONCURRENCY for workers (goalpost's default)
 *   --runtime build|dist|tsx BENCH_RUNTIME         how goalpost runs (build):
 *                            build: the bench compiles src with tsc into bench/.build/ and runs that
 *                                   (compiled like production, and never rewrites the project's dist/);
 *                            dist:  bin/goalpost.js as it is (the project's dist/, whatever its age);
 *                            tsx:   node --import tsx src/cli/index.ts
 *   --build auto|always|never BENCH_BUILD          runtime build: compile when src is newer than the build (auto)
 *   --ref GITREF           BENCH_REF               runtime build: compile that commit (git archive, read-only) instead of the working tree
 *   --src DIR              BENCH_SRC               runtime build: compile the goalpost tree in DIR (e.g. an experiment under bench/.build/)
 *   --config FILE          BENCH_CONFIG            GOALPOST_CONFIG for the server (applied at start), e.g. bench/config.yaml:
 *                                                 segments and campaigns, so the worker's in-transaction evaluation works
 *   --pg-options OPTS      BENCH_PG_OPTIONS        PGOPTIONS for the workers' Postgres sessions (experiments, e.g. "-c synchronous_commit=off")
 *   --cpu-prof                                     node --cpu-prof on server and workers; summary printed
 *   --pg-timing                                    time every SQL statement in the workers (bench/pg-timing.mjs)
 *   --pg-waits                                     sample pg_stat_activity wait events of the bench database
 *   --keep                                         keep the database, queue keys and run directory
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { Redis } from 'ioredis'
import { formatSummary, summariseProfile } from './cpuprofile.ts'
import {
  BENCH_DIR,
  ROOT,
  dropBenchResources,
  formatPgTiming,
  fmt,
  freePort,
  killChildrenOnExit,
  log,
  machineLoad,
  mb,
  newestMtime,
  now,
  percentile,
  redisUsedMemory as libRedisUsedMemory,
  sh,
  sleep,
  startChild as startLibChild,
  stopChild,
  vmHwm,
  waitForLine,
  waitReady,
  type Child,
  goalpostEnv,
} from './lib.ts'

const TARGET_ACCEPTED = 20_000
const TARGET_PERSISTED = 15_000
const WRITE_KEY = 'bench-write-key'

// --- options ---------------------------------------------------------------------

const { values: flags } = parseArgs({
  options: {
    events: { type: 'string' },
    warmup: { type: 'string' },
    'batch-size': { type: 'string' },
    concurrency: { type: 'string' },
    threads: { type: 'string' },
    users: { type: 'string' },
    phases: { type: 'string' },
    workers: { type: 'string' },
    topology: { type: 'string' },
    'ingest-concurrency': { type: 'string' },
    runtime: { type: 'string' },
    build: { type: 'string' },
    ref: { type: 'string' },
    src: { type: 'string' },
    config: { type: 'string' },
    'pg-options': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'pg-timing': { type: 'boolean', default: false },
    'pg-waits': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (flags.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0])
  process.exit(0)
}
const int = (flag: string | undefined, env: string, dflt: number) => {
  const raw = flag ?? process.env[env]
  const n = raw === undefined || raw === '' ? dflt : Number(raw)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${env}: not a non-negative integer: ${raw}`)
  return n
}
const opts = {
  events: int(flags.events, 'BENCH_EVENTS', 300_000),
  warmup: int(flags.warmup, 'BENCH_WARMUP', 20_000),
  batchSize: int(flags['batch-size'], 'BENCH_BATCH_SIZE', 100),
  concurrency: int(flags.concurrency, 'BENCH_CONCURRENCY', 16),
  threads: Math.max(1, int(flags.threads, 'BENCH_THREADS', 1)),
  users: Math.max(1, int(flags.users, 'BENCH_USERS', 50_000)),
  phases: (flags.phases ?? process.env.BENCH_PHASES ?? 'combined,split').split(',').map((p) => p.trim()),
  workers: Math.max(1, int(flags.workers, 'BENCH_WORKERS', 1)),
  topology: (flags.topology ?? process.env.BENCH_TOPOLOGY ?? 'split') as 'split' | 'start',
  ingestConcurrency: flags['ingest-concurrency'] ?? process.env.BENCH_INGEST_CONCURRENCY ?? '',
  runtime: (flags.runtime ?? process.env.BENCH_RUNTIME ?? 'build') as 'build' | 'dist' | 'tsx',
  ref: flags.ref ?? process.env.BENCH_REF ?? '',
  src: flags.src ?? process.env.BENCH_SRC ?? '',
  config: flags.config ?? process.env.BENCH_CONFIG ?? '',
  pgOptions: flags['pg-options'] ?? process.env.BENCH_PG_OPTIONS ?? '',
  build: (flags.build ?? process.env.BENCH_BUILD ?? 'auto') as 'auto' | 'always' | 'never',
  cpuProf: flags['cpu-prof']!,
  pgTiming: flags['pg-timing']!,
  pgWaits: flags['pg-waits']!,
  keep: flags.keep!,
}
for (const p of opts.phases) if (p !== 'combined' && p !== 'split') throw new Error(`--phases: unknown phase "${p}"`)
if (opts.topology !== 'split' && opts.topology !== 'start') throw new Error(`--topology: split or start, not "${opts.topology}"`)
if (opts.topology === 'start' && opts.phases.includes('split')) throw new Error('--topology start runs server and worker in one process: only --phases combined')
if (!['build', 'dist', 'tsx'].includes(opts.runtime)) throw new Error('--runtime must be build, dist or tsx')
if ((opts.ref || opts.src) && opts.runtime !== 'build') throw new Error('--ref and --src need --runtime build')
if (opts.ref && opts.src) throw new Error('--ref and --src exclude each other')
if (opts.config && !existsSync(opts.config)) throw new Error(`--config ${opts.config}: no such file`)
if (!['auto', 'always', 'never'].includes(opts.build)) throw new Error('--build must be auto, always or never')

const tag = randomBytes(4).toString('hex')
const dbName = `goalpost_bench_${tag}`
const queuePrefix = `gpbench_${tag}`
const pgServer = process.env.BENCH_PG_SERVER_URL ?? 'postgres://postgres@127.0.0.1:5432'
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const databaseUrl = `${pgServer}/${dbName}`
const runDir = path.join(BENCH_DIR, '.runs', `${new Date().toISOString().replace(/[:.]/g, '-')}-${tag}`)
mkdirSync(runDir, { recursive: true })

// --- small helpers ---------------------------------------------------------------------

function topSnapshot(): string {
  // The second of two top iterations shows CPU over the last half second (the first, since boot).
  return sh('sh', ['-c', "top -bn2 -d 0.5 -w 160 | awk '/^top -/{n++} n==2' | sed -n '7,15p'"])
}

// --- /proc: memory and CPU ---------------------------------------------------------------

const CLK_TCK = Number(sh('getconf', ['CLK_TCK'])) || 100

interface CpuSnapshot {
  at: number
  machineBusy: number
  machineTotal: number
  procs: Map<number, { ticks: number; cat: string }>
}

const roles = new Map<number, string>() // pid -> category, for goalpost children
const CPU_CATEGORIES = ['server', 'worker', 'postgres (bench db backends)', 'postgres (autovacuum, bench db)', 'postgres (other)', 'redis', 'load generator (bench)']

function procCategory(pid: number, comm: string): string | null {
  const role = roles.get(pid)
  if (role) return role
  if (pid === process.pid) return 'load generator (bench)'
  if (comm === 'redis-server') return 'redis'
  if (comm === 'postgres') {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      // Backends ("postgres: 15/main: postgres <db> …") and autovacuum workers of the bench database.
      if (!cmdline.includes(dbName)) return 'postgres (other)'
      return cmdline.includes('autovacuum') ? 'postgres (autovacuum, bench db)' : 'postgres (bench db backends)'
    } catch {
      return 'postgres (other)'
    }
  }
  return null
}

function cpuSnapshot(): CpuSnapshot {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0)
  const idle = cpu[3] + cpu[4]
  const procs = new Map<number, { ticks: number; cat: string }>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const cat = procCategory(pid, comm)
      if (!cat) continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      procs.set(pid, { ticks: Number(fields[11]) + Number(fields[12]), cat })
    } catch {
      // the process ended meanwhile
    }
  }
  return { at: now(), machineBusy: total - idle, machineTotal: total, procs }
}

interface CpuSplit {
  wallS: number
  machineBusyS: number
  rows: { cat: string; cpuS: number }[]
}

function cpuSplit(a: CpuSnapshot, b: CpuSnapshot): CpuSplit {
  const byCat = new Map<string, number>(CPU_CATEGORIES.map((c) => [c, 0]))
  for (const [pid, end] of b.procs) {
    const start = a.procs.get(pid)?.ticks ?? 0
    byCat.set(end.cat, (byCat.get(end.cat) ?? 0) + Math.max(0, end.ticks - start) / CLK_TCK)
  }
  // /proc/stat counts USER_HZ ticks per CPU summed over CPUs.
  const machineBusyS = (b.machineBusy - a.machineBusy) / CLK_TCK
  const known = [...byCat.values()].reduce((x, y) => x + y, 0)
  const rows = [...byCat].map(([cat, cpuS]) => ({ cat, cpuS }))
  rows.push({ cat: 'rest of machine (other agents, kernel)', cpuS: Math.max(0, machineBusyS - known) })
  return { wallS: (b.at - a.at) / 1000, machineBusyS, rows }
}

// --- child processes ---------------------------------------------------------------

const children = new Set<Child>()

let refLabel = ''
/** The goalpost CLI entry point the children run (set by prepareRuntime). */
let entry = path.join(ROOT, 'bin/goalpost.js')

function goalpostArgs(command: string, extraNodeArgs: string[] = []): string[] {
  return opts.runtime === 'tsx'
    ? ['--import', 'tsx', ...extraNodeArgs, entry, command]
    : [...extraNodeArgs, entry, command]
}

/**
 * Compiles goalpost into bench/.build/<name> (runtime build), from the working
 * tree or from a commit exported with `git archive` (read-only for git). The
 * output sits under the project, so its imports resolve the project's
 * node_modules, and migrations are compiled next to src as in dist/.
 */
function prepareRuntime(): string {
  if (opts.runtime === 'dist') {
    const built = path.join(ROOT, 'dist/src/cli/index.js')
    if (!existsSync(built)) throw new Error('dist/ is missing: run npm run build, or use --runtime build')
    if (newestMtime(path.join(ROOT, 'src')) > statSync(built).mtimeMs) log('WARNING: dist/ is older than src/ (runtime dist runs it as it is)')
    return 'dist/ (bin/goalpost.js)'
  }
  if (opts.runtime === 'tsx') {
    entry = path.join(ROOT, 'src/cli/index.ts')
    return 'src/ via tsx'
  }
  let srcRoot = ROOT
  let name = 'worktree'
  if (opts.src) {
    srcRoot = path.resolve(opts.src)
    if (!existsSync(path.join(srcRoot, 'tsconfig.json'))) throw new Error(`--src ${opts.src}: no tsconfig.json there`)
    name = `src-${path.basename(srcRoot).replace(/-src$/, '')}`
  } else if (opts.ref) {
    const sha = sh('git', ['rev-parse', '--verify', `${opts.ref}^{commit}`])
    if (!sha) throw new Error(`--ref ${opts.ref}: not a commit`)
    name = `ref-${sha.slice(0, 10)}`
    refLabel = `commit ${sha.slice(0, 10)} (${opts.ref})`
    srcRoot = path.join(BENCH_DIR, '.build', `${name}-src`)
    if (!existsSync(path.join(srcRoot, 'tsconfig.json'))) {
      mkdirSync(srcRoot, { recursive: true })
      const r = spawnSync('sh', ['-c', `git archive ${sha} | tar -x -C ${JSON.stringify(srcRoot)}`], { cwd: ROOT, stdio: 'inherit' })
      if (r.status !== 0) throw new Error(`git archive ${sha} failed`)
    }
  }
  const outDir = path.join(BENCH_DIR, '.build', name)
  const built = path.join(outDir, 'src/cli/index.js')
  const newestSource = Math.max(newestMtime(path.join(srcRoot, 'src')), newestMtime(path.join(srcRoot, 'migrations')))
  const stale = !existsSync(built) || newestSource > statSync(built).mtimeMs
  if (opts.build === 'always' || (opts.build === 'auto' && stale)) {
    log(`compiling ${opts.src ? srcRoot : opts.ref ? refLabel : 'the working tree'} into ${path.relative(ROOT, outDir)} (tsc)`)
    const r = spawnSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(srcRoot, 'tsconfig.json'), '--outDir', outDir, '--declaration', 'false', '--sourceMap', 'false'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    if (r.status !== 0) {
      if (!existsSync(built)) throw new Error(`tsc failed and emitted nothing:\n${r.stdout}${r.stderr}`)
      log(`WARNING: tsc reported type errors (is src/ being edited?); running what it emitted:\n${(r.stdout + r.stderr).split('\n').slice(0, 8).join('\n')}`)
    }
    // Mark the build time explicitly: tsc leaves unchanged outputs' mtimes alone.
    spawnSync('touch', [built])
  } else if (stale) log('WARNING: the bench build is older than src/ and --build never was given')
  entry = built
  const what = opts.src
    ? path.relative(ROOT, srcRoot)
    : opts.ref
      ? refLabel
      : `the working tree at ${sh('git', ['rev-parse', '--short=10', 'HEAD'])} + ${sh('git', ['status', '--short', 'src', 'migrations']).split('\n').filter(Boolean).length} uncommitted file(s)`
  return `${path.relative(ROOT, outDir)} (tsc of ${what})`
}

const childEnv = (extra: Record<string, string> = {}) =>
  goalpostEnv({ databaseUrl, redisUrl, writeKey: WRITE_KEY, queuePrefix, ingestConcurrency: opts.ingestConcurrency }, extra)

/** lib.ts's startChild, with the child's CPU recorded under `role`. */
function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, role?: string): Child {
  const child = startLibChild(children, runDir, name, args, env)
  if (role && child.proc.pid) roles.set(child.proc.pid, role)
  return child
}

killChildrenOnExit(children)

// --- load generator threads -----------------------------------------------------------

interface LoadResult {
  requests: number
  ok: number
  acceptedEvents: number
  rejectedEvents: number
  failedEvents: number
  statuses: Record<string, number>
  errors: { status: number; body: string }[]
  latencies: number[]
  buildMs: number
  firstRequestAt: number
  lastResponseAt: number
}

let loadThreads: Worker[] = []
let batchOffset = 0

function startLoadThreads(url: string) {
  loadThreads = Array.from(
    { length: opts.threads },
    () => new Worker(new URL('./loadgen-worker.mjs', import.meta.url), { workerData: { url, writeKey: WRITE_KEY } }),
  )
}

async function sendLoad(events: number): Promise<LoadResult & { sentEvents: number }> {
  const totalBatches = Math.ceil(events / opts.batchSize)
  const counter = new SharedArrayBuffer(4)
  const cfg = { seed: 0x5eed, runTag: tag, users: opts.users, deliveries: Math.max(1, Math.round(opts.events * 0.05)), batchOffset }
  batchOffset += totalBatches
  const per = loadThreads.map((_, k) => Math.floor(opts.concurrency / opts.threads) + (k < opts.concurrency % opts.threads ? 1 : 0))
  const results = await Promise.all(
    loadThreads.map(
      (w, k) =>
        new Promise<LoadResult>((resolve, reject) => {
          if (per[k] === 0) return resolve(emptyResult())
          const id = Math.random()
          const onMessage = (msg: { type: string; id: number; result?: LoadResult; error?: string }) => {
            if (msg.id !== id) return
            w.off('message', onMessage)
            if (msg.type === 'done') resolve(msg.result!)
            else reject(new Error(`load generator: ${msg.error}`))
          }
          w.on('message', onMessage)
          w.postMessage({ cmd: 'run', id, counter, totalBatches, batchSize: opts.batchSize, connections: per[k], cfg })
        }),
    ),
  )
  const merged = emptyResult()
  for (const r of results) {
    merged.requests += r.requests
    merged.ok += r.ok
    merged.acceptedEvents += r.acceptedEvents
    merged.rejectedEvents += r.rejectedEvents
    merged.failedEvents += r.failedEvents
    for (const [s, n] of Object.entries(r.statuses)) merged.statuses[s] = (merged.statuses[s] ?? 0) + n
    merged.errors.push(...r.errors)
    merged.latencies.push(...r.latencies)
    merged.buildMs += r.buildMs
    merged.firstRequestAt = Math.min(merged.firstRequestAt, r.firstRequestAt)
    merged.lastResponseAt = Math.max(merged.lastResponseAt, r.lastResponseAt)
  }
  merged.latencies.sort((a, b) => a - b)
  return { ...merged, sentEvents: totalBatches * opts.batchSize }
}

function emptyResult(): LoadResult {
  return {
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
}

// --- Postgres and Redis probes -----------------------------------------------------------

let db: pg.Client | undefined
let redis: Redis | undefined

async function eventsCount(): Promise<number> {
  const { rows } = await db!.query<{ n: string }>('SELECT count(*) AS n FROM events')
  return Number(rows[0].n)
}

/**
 * The last seq handed out (the identity's sequence): read without touching
 * the table, so polling it every 50 ms costs Postgres nothing, whatever
 * indexes `events` has. It runs ahead of commits, so it only says when to count.
 */
async function maxSeq(): Promise<number> {
  const { rows } = await db!.query<{ n: string | null }>(
    `SELECT pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass) AS n`,
  )
  return Number(rows[0].n ?? 0)
}

const redisUsedMemory = () => libRedisUsedMemory(redis!)

async function queueWaiting(): Promise<number> {
  return redis!.llen(`${queuePrefix}:{ingest}:wait`)
}

/** Background sampling while a phase runs: Redis memory peak, queue depth, pg wait events. */
function startSampler() {
  const s = { redisPeak: 0, queuePeak: 0, waits: new Map<string, number>(), waitSamples: 0, stop: () => {} }
  let running = true
  const waitDb = opts.pgWaits ? new pg.Client({ connectionString: `${pgServer}/postgres`, application_name: 'goalpost-bench-sampler' }) : null
  const loop = (async () => {
    if (waitDb) await waitDb.connect()
    let tick = 0
    while (running) {
      try {
        if (tick % 3 === 0) {
          s.redisPeak = Math.max(s.redisPeak, await redisUsedMemory())
          s.queuePeak = Math.max(s.queuePeak, await queueWaiting())
        }
        if (waitDb) {
          const { rows } = await waitDb.query<{ k: string; n: string }>(
            `SELECT coalesce(state, '?') || ' / ' || coalesce(wait_event_type || ':' || wait_event, 'on CPU') AS k, count(*) AS n
               FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' GROUP BY 1`,
            [dbName],
          )
          for (const r of rows) s.waits.set(r.k, (s.waits.get(r.k) ?? 0) + Number(r.n))
          s.waitSamples++
        }
      } catch {
        // a probe failing must not stop the bench
      }
      tick++
      await sleep(100)
    }
    if (waitDb) await waitDb.end().catch(() => {})
  })()
  s.stop = () => {
    running = false
    return loop
  }
  return s as typeof s & { stop: () => Promise<void> }
}

/** Waits until `events` holds `target` rows; returns when that was seen and when the count first moved. */
async function waitPersisted(target: number, opts2: { stallMs?: number; watch: Child[] }) {
  const stallMs = opts2.stallMs ?? 90_000
  let lastSeq = await maxSeq()
  let lastMove = Date.now()
  const startSeq = lastSeq
  let firstProgressAt = 0
  for (;;) {
    const seq = await maxSeq()
    if (seq !== lastSeq) {
      if (!firstProgressAt && seq > startSeq) firstProgressAt = now()
      lastSeq = seq
      lastMove = Date.now()
    }
    // seq has no gaps but for rolled-back inserts, so max(seq) >= count: check the count only once it can be done.
    if (seq >= target && (await eventsCount()) >= target) return { doneAt: now(), firstProgressAt: firstProgressAt || now() }
    if (Date.now() - lastMove > stallMs) {
      const tails = opts2.watch.map((c) => `--- ${c.name} (${c.logFile}) ---\n${c.tail.slice(-15).join('\n')}`).join('\n')
      throw new Error(`persisting stalled: events at ${await eventsCount()} of ${target} for ${stallMs / 1000} s\n${tails}`)
    }
    for (const c of opts2.watch)
      if (c.proc.exitCode !== null) throw new Error(`${c.name} exited (${c.proc.exitCode}):\n${c.tail.join('\n')}`)
    await sleep(50)
  }
}

// --- reporting -----------------------------------------------------------------------

interface Row {
  phase: string
  events: number
  seconds: number
  target?: number
  note?: string
}
const rows: Row[] = []
const latencyRows: { phase: string; lat: number[]; requests: number; statuses: Record<string, number>; buildMs: number }[] = []
const memoryRows: { what: string; bytes: number }[] = []
const redisRows: { phase: string; before: number; peak: number; after: number; queuePeak: number }[] = []
const cpuRows: { phase: string; split: CpuSplit; events: number }[] = []
const waitRows: { phase: string; waits: Map<string, number>; samples: number }[] = []
const errorsSeen: { phase: string; status: number; body: string }[] = []

function reportLoad(phase: string, r: Awaited<ReturnType<typeof sendLoad>>) {
  latencyRows.push({ phase, lat: r.latencies, requests: r.requests, statuses: r.statuses, buildMs: r.buildMs })
  for (const e of r.errors) if (errorsSeen.length < 10) errorsSeen.push({ phase, ...e })
  if (r.failedEvents > 0 || r.rejectedEvents > 0) {
    log(`${phase}: ${r.requests - r.ok} non-200 answers (${JSON.stringify(r.statuses)}), ${r.rejectedEvents} rejected messages; first bodies:`)
    for (const e of r.errors.slice(0, 5)) console.log(`    ${e.status}: ${e.body}`)
  }
}

function printTable() {
  const line = '-'.repeat(104)
  console.log(`\n${line}`)
  console.log(
    `goalpost ingest bench  ${fmt(opts.events)} events/phase, batches of ${opts.batchSize}, ${opts.concurrency} connections, ` +
      `${opts.threads} load thread(s), ${opts.workers} worker process(es), ingest concurrency ${opts.ingestConcurrency || 'default'}, ${opts.users} users, config ${opts.config || 'none (ingest only)'}` +
      `${opts.pgOptions ? `, worker PGOPTIONS "${opts.pgOptions}"` : ''}`,
  )
  console.log(
    `goalpost from ${runtimeLabel}; machine: ${os.cpus().length} cores, ${machineLoad()} at the end (the bench's own load included)`,
  )
  console.log(line)
  console.log(`${'phase'.padEnd(48)}${'events'.padStart(10)}${'seconds'.padStart(10)}${'events/s'.padStart(12)}${'target'.padStart(12)}  verdict`)
  for (const r of rows) {
    const rate = r.events / r.seconds
    const verdict = r.target === undefined ? '' : rate >= r.target ? 'MEETS' : `BELOW (${fmt((100 * rate) / r.target)}%)`
    console.log(
      `${r.phase.padEnd(48)}${fmt(r.events).padStart(10)}${fmt(r.seconds, 2).padStart(10)}${fmt(rate).padStart(12)}` +
        `${(r.target === undefined ? '' : `>= ${fmt(r.target)}`).padStart(12)}  ${verdict}${r.note ? `  ${r.note}` : ''}`,
    )
  }
  console.log(`\nHTTP /v1/batch latency (ms)`)
  console.log(`${'phase'.padEnd(30)}${'requests'.padStart(10)}${'p50'.padStart(8)}${'p95'.padStart(8)}${'p99'.padStart(8)}${'max'.padStart(9)}  statuses   payload build (loadgen)`)
  for (const l of latencyRows)
    console.log(
      `${l.phase.padEnd(30)}${fmt(l.requests).padStart(10)}${fmt(percentile(l.lat, 50), 1).padStart(8)}${fmt(percentile(l.lat, 95), 1).padStart(8)}` +
        `${fmt(percentile(l.lat, 99), 1).padStart(8)}${fmt(percentile(l.lat, 100), 1).padStart(9)}  ${JSON.stringify(l.statuses)}  ${fmt(l.buildMs / Math.max(1, l.requests), 2)} ms/batch`,
    )
  console.log(`\nPeak RSS (VmHWM from /proc/<pid>/status)`)
  for (const m of memoryRows) console.log(`  ${m.what.padEnd(46)}${mb(m.bytes).padStart(12)}`)
  console.log(`\nRedis used_memory (shared instance; other users' keys included)`)
  for (const r of redisRows)
    console.log(`  ${r.phase.padEnd(30)} before ${mb(r.before).padStart(10)}   peak ${mb(r.peak).padStart(10)}   after ${mb(r.after).padStart(10)}   queue peak ${fmt(r.queuePeak)} jobs`)
  console.log(`\nCPU split (cpu-seconds; % of one core = cpu-s / wall-s; machine has ${os.cpus().length} cores)`)
  for (const { phase, split, events } of cpuRows) {
    console.log(`  ${phase}: wall ${fmt(split.wallS, 1)} s, machine busy ${fmt(split.machineBusyS, 1)} cpu-s (${fmt((100 * split.machineBusyS) / (split.wallS * os.cpus().length))}% of all cores)`)
    console.log(`    ${''.padEnd(42)}${'cpu-s'.padStart(8)}${'% core'.padStart(8)}${'% busy'.padStart(8)}${'cpu-ms/1k ev'.padStart(14)}`)
    for (const r of split.rows)
      console.log(
        `    ${r.cat.padEnd(42)}${fmt(r.cpuS, 1).padStart(8)}${fmt((100 * r.cpuS) / split.wallS).padStart(8)}${fmt((100 * r.cpuS) / Math.max(1e-9, split.machineBusyS)).padStart(8)}` +
          `${fmt((1e6 * r.cpuS) / Math.max(1, events), 1).padStart(14)}`,
      )
    // What goalpost's own stack costs per event, independent of how loaded the machine is.
    const stack = split.rows.filter((r) => ['server', 'worker', 'postgres (bench db backends)', 'redis'].includes(r.cat)).reduce((a, r) => a + r.cpuS, 0)
    console.log(
      `    goalpost stack (server+worker+pg backends+redis): ${fmt((1e6 * stack) / Math.max(1, events), 1)} cpu-ms per 1k events` +
        ` -> CPU-bound ceiling on ${os.cpus().length} idle cores ~ ${fmt((os.cpus().length * events) / Math.max(1e-9, stack))} events/s`,
    )
  }
  if (waitRows.length > 0) {
    console.log(`\nPostgres backends of the bench db, sampled every 100 ms (state / wait event: avg backends)`)
    for (const w of waitRows) {
      console.log(`  ${w.phase} (${w.samples} samples)`)
      for (const [k, n] of [...w.waits].sort((a, b) => b[1] - a[1]).slice(0, 10)) console.log(`    ${fmt(n / Math.max(1, w.samples), 2).padStart(6)}  ${k}`)
    }
  }
  if (errorsSeen.length > 0) {
    console.log(`\nFirst error answers:`)
    for (const e of errorsSeen.slice(0, 5)) console.log(`  [${e.phase}] ${e.status}: ${e.body}`)
  }
  console.log(line)
}

// --- the run ---------------------------------------------------------------------------

let runtimeLabel = opts.runtime as string
let cleaningUp: Promise<void> | undefined
function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c, 15_000)))
    await Promise.all(loadThreads.map((w) => w.terminate()))
    await db?.end().catch(() => {})
    if (!opts.keep) {
      await dropBenchResources(pgServer, dbName, redis, queuePrefix)
    } else log(`kept database ${dbName} and queue prefix ${queuePrefix}`)
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
  log(`run ${tag}: database ${dbName}, queue prefix ${queuePrefix}, logs in ${path.relative(ROOT, runDir)}`)
  log(`machine before: ${machineLoad()}`)
  console.log(topSnapshot().split('\n').map((l) => `    ${l}`).join('\n'))
  log(`git ${sh('git', ['rev-parse', '--short', 'HEAD'])}; uncommitted under src/: ${sh('git', ['status', '--short', 'src', 'migrations']).split('\n').filter(Boolean).length} file(s)`)

  // The compiled build is what production runs.
  runtimeLabel = prepareRuntime()
  log(`goalpost runs from ${runtimeLabel}`)

  // Database and connections.
  const migrate = startChild('migrate', goalpostArgs('migrate'), childEnv())
  if ((await migrate.exited) !== 0) throw new Error(`goalpost migrate failed:\n${migrate.tail.join('\n')}`)
  db = new pg.Client({ connectionString: databaseUrl, application_name: 'goalpost-bench' })
  await db.connect()
  redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 })

  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const profArgs = (name: string) => (opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(runDir, `prof-${name}`)}`] : [])
  const timingArgs = opts.pgTiming ? ['--import', pathToFileURL(path.join(BENCH_DIR, 'pg-timing.mjs')).href] : []
  let workerGeneration = 0
  const startWorkers = async (): Promise<Child[]> => {
    if (opts.topology === 'start') return [] // the "server" process runs the workers too
    const gen = ++workerGeneration
    const ws = Array.from({ length: opts.workers }, (_, i) => {
      const name = `worker${gen}-${i}`
      return startChild(
        name,
        goalpostArgs('worker', [...profArgs(name), ...timingArgs]),
        childEnv({
          ...(opts.pgTiming ? { BENCH_PG_TIMING_OUT: path.join(runDir, `pg-timing-${name}.json`) } : {}),
          ...(opts.pgOptions ? { PGOPTIONS: opts.pgOptions } : {}),
        }),
        'worker',
      )
    })
    await Promise.all(ws.map((w) => waitForLine(w, 'workers started')))
    return ws
  }

  const server = startChild(
    'server',
    goalpostArgs(opts.topology === 'start' ? 'start' : 'serve', profArgs('server')),
    childEnv({ PORT: String(port), ...(opts.config ? { GOALPOST_CONFIG: path.resolve(opts.config) } : {}) }),
    'server',
  )
  await waitReady(server, url)
  let workers = await startWorkers()
  log(`server pid ${server.proc.pid} on ${url}; worker pid(s) ${workers.map((w) => w.proc.pid).join(', ')}`)
  startLoadThreads(url)

  // Warm-up: JIT, connection pools, Postgres caches. Not measured.
  if (opts.warmup > 0) {
    const base = await eventsCount()
    const r = await sendLoad(opts.warmup)
    reportLoad('warm-up', r)
    await waitPersisted(base + r.acceptedEvents, { watch: [server, ...workers] })
    log(`warm-up: ${fmt(r.acceptedEvents)} events accepted in ${fmt((r.lastResponseAt - r.firstRequestAt) / 1000, 2)} s and persisted`)
    // A database minutes old has had no autovacuum round yet, so the planner
    // has no statistics; a running installation has them (autovacuum analyzes
    // a table after 10 % of it changes). Measure the steady state.
    await db!.query('ANALYZE')
  }

  if (opts.phases.includes('combined')) {
    log(`combined: ${fmt(opts.events)} events with server and worker running`)
    const base = await eventsCount()
    const redisBefore = await redisUsedMemory()
    const sampler = startSampler()
    const cpu0 = cpuSnapshot()
    const r = await sendLoad(opts.events)
    reportLoad('combined', r)
    log(`combined: accepted ${fmt(r.acceptedEvents)} in ${fmt((r.lastResponseAt - r.firstRequestAt) / 1000, 2)} s; waiting for the worker`)
    const { doneAt } = await waitPersisted(base + r.acceptedEvents, { watch: [server, ...workers] })
    const cpu1 = cpuSnapshot()
    await sampler.stop()
    const redisAfter = await redisUsedMemory()
    rows.push({ phase: 'combined: accepted (HTTP 200)', events: r.acceptedEvents, seconds: (r.lastResponseAt - r.firstRequestAt) / 1000, target: TARGET_ACCEPTED })
    rows.push({ phase: 'combined: persisted end-to-end', events: r.acceptedEvents, seconds: (doneAt - r.firstRequestAt) / 1000, target: TARGET_PERSISTED })
    redisRows.push({ phase: 'combined', before: redisBefore, peak: Math.max(sampler.redisPeak, redisAfter), after: redisAfter, queuePeak: sampler.queuePeak })
    cpuRows.push({ phase: 'combined (first request -> all persisted)', split: cpuSplit(cpu0, cpu1), events: r.acceptedEvents })
    if (opts.pgWaits) waitRows.push({ phase: 'combined', waits: sampler.waits, samples: sampler.waitSamples })
    memoryRows.push({ what: 'server after combined', bytes: vmHwm(server.proc.pid) })
    workers.forEach((w, i) => memoryRows.push({ what: `worker ${i} (combined phase process)`, bytes: vmHwm(w.proc.pid) }))
  }

  if (opts.phases.includes('split')) {
    workers.forEach((w, i) => {
      if (!opts.phases.includes('combined')) memoryRows.push({ what: `worker ${i} (warm-up process)`, bytes: vmHwm(w.proc.pid) })
    })
    await Promise.all(workers.map((w) => stopChild(w)))
    log(`split: worker stopped; ${fmt(opts.events)} events into the queue with no worker`)
    const base = await eventsCount()
    const redisBefore = await redisUsedMemory()
    let sampler = startSampler()
    let cpu0 = cpuSnapshot()
    const r = await sendLoad(opts.events)
    let cpu1 = cpuSnapshot()
    await sampler.stop()
    reportLoad('split: accept only', r)
    const redisFull = await redisUsedMemory()
    const waiting = await queueWaiting()
    rows.push({ phase: 'split: accepted, no worker (queue fills)', events: r.acceptedEvents, seconds: (r.lastResponseAt - r.firstRequestAt) / 1000, target: TARGET_ACCEPTED })
    redisRows.push({ phase: 'split: accept only', before: redisBefore, peak: Math.max(sampler.redisPeak, redisFull), after: redisFull, queuePeak: Math.max(sampler.queuePeak, waiting) })
    cpuRows.push({ phase: 'split: accept only (HTTP, no worker)', split: cpuSplit(cpu0, cpu1), events: r.acceptedEvents })
    memoryRows.push({ what: 'server after split accept', bytes: vmHwm(server.proc.pid) })
    log(`split: ${fmt(waiting)} jobs waiting, Redis used_memory ${mb(redisFull)}; starting the worker`)

    sampler = startSampler()
    cpu0 = cpuSnapshot()
    const spawnedAt = now()
    workers = await startWorkers()
    const { doneAt, firstProgressAt } = await waitPersisted(base + r.acceptedEvents, { watch: workers })
    cpu1 = cpuSnapshot()
    await sampler.stop()
    const redisAfter = await redisUsedMemory()
    rows.push({ phase: 'split: drain (worker spawn -> all persisted)', events: r.acceptedEvents, seconds: (doneAt - spawnedAt) / 1000, target: TARGET_PERSISTED })
    rows.push({ phase: 'split: drain (first row -> all persisted)', events: r.acceptedEvents, seconds: (doneAt - firstProgressAt) / 1000, target: TARGET_PERSISTED, note: `(worker start-up ${fmt((firstProgressAt - spawnedAt) / 1000, 2)} s)` })
    redisRows.push({ phase: 'split: drain', before: redisFull, peak: Math.max(sampler.redisPeak, redisFull), after: redisAfter, queuePeak: sampler.queuePeak })
    cpuRows.push({ phase: 'split: drain (worker only)', split: cpuSplit(cpu0, cpu1), events: r.acceptedEvents })
    if (opts.pgWaits) waitRows.push({ phase: 'split: drain', waits: sampler.waits, samples: sampler.waitSamples })
    workers.forEach((w, i) => memoryRows.push({ what: `worker ${i} (drain process)`, bytes: vmHwm(w.proc.pid) }))
  }

  // What ended up in Postgres (people and deliveries are written in the events' transaction).
  const { rows: counts } = await db.query<{ events: string; people: string; deliveries: string; links: string; rejected: string }>(
    `SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM people) AS people,
            (SELECT count(*) FROM deliveries) AS deliveries, (SELECT count(*) FROM identity_links) AS links,
            (SELECT count(*) FROM rejected_messages) AS rejected`,
  )
  const { rows: size } = await db.query<{ bytes: string }>(`SELECT pg_database_size(current_database()) AS bytes`)
  memoryRows.push({ what: 'server (whole run)', bytes: vmHwm(server.proc.pid) })

  // Stop goalpost first so CPU profiles and SQL timings get written.
  await Promise.all([...children].map((c) => stopChild(c)))
  printTable()
  const c = counts[0]
  console.log(
    `Postgres: events ${fmt(Number(c.events))}, people ${fmt(Number(c.people))}, deliveries ${fmt(Number(c.deliveries))}, ` +
      `identity_links ${fmt(Number(c.links))}, rejected_messages ${fmt(Number(c.rejected))}; database size ${mb(Number(size[0].bytes))}`,
  )
  log(`machine after: ${machineLoad()}`)

  if (opts.pgTiming) printPgTiming()
  if (opts.cpuProf) printProfiles()
}

function printPgTiming() {
  for (const f of readdirSync(runDir).filter((f) => f.startsWith('pg-timing-') && f.endsWith('.json')))
    console.log(`\n${formatPgTiming(path.join(runDir, f), f.replace(/^pg-timing-|\.json$/g, ''))}`)
}

function printProfiles() {
  for (const dir of readdirSync(runDir).filter((d) => d.startsWith('prof-'))) {
    for (const f of readdirSync(path.join(runDir, dir)).filter((x) => x.endsWith('.cpuprofile'))) {
      console.log(`\nCPU profile ${dir.slice(5)}: ${formatSummary(summariseProfile(path.join(runDir, dir, f)), 14, 18)}`)
    }
  }
}

main()
  .then(async () => {
    await cleanup()
    if (!opts.keep && !opts.cpuProf && !opts.pgTiming) rmSync(runDir, { recursive: true, force: true })
    else log(`run directory kept: ${path.relative(ROOT, runDir)}`)
    process.exit(0)
  })
  .catch(async (err) => {
    console.error(`\nbench failed: ${err instanceof Error ? err.stack ?? err.message : err}`)
    if (rows.length > 0) printTable()
    await cleanup().catch(() => {})
    log(`logs kept in ${path.relative(ROOT, runDir)}`)
    writeFileSync(path.join(runDir, 'error.txt'), String(err instanceof Error ? err.stack : err))
    process.exit(1)
  })
