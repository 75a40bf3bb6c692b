/**
 * Helpers shared by the benchmarks (bench/ingest.ts, bench/engine.ts, bench/history.ts):
 * formatting, /proc probes, child processes, compiling goalpost into
 * bench/.build/, and removing a run's database and Redis keys.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import type { Redis } from 'ioredis'
import type { Worker } from 'node:worker_threads'

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
export const ROOT = path.resolve(BENCH_DIR, '..')

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
export const now = () => performance.timeOrigin + performance.now()
export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
export const mb = (bytes: number) => `${fmt(bytes / 1024 / 1024, 1)} MB`
export const log = (msg: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`)

export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8' })
  return (r.stdout ?? '').trim()
}

export function machineLoad(): string {
  const [a, b, c] = os.loadavg()
  return `load avg ${a.toFixed(2)} ${b.toFixed(2)} ${c.toFixed(2)} on ${os.cpus().length} cores`
}

export function newestMtime(dir: string): number {
  let newest = 0
  if (!existsSync(dir)) return 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)
  }
  return newest
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

/** Peak resident set size of a process (VmHWM), in bytes; 0 when it is gone. */
export function vmHwm(pid: number | undefined): number {
  if (!pid) return 0
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+)\s+kB/m)
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** An integer >= min (1) from the environment variable `env`, or dflt when it is unset or empty. */
export function envInt(env: string, dflt: number, min = 1): number {
  const raw = process.env[env]
  const n = raw === undefined || raw === '' ? dflt : Number(raw)
  if (!Number.isInteger(n) || n < min) throw new Error(`${env}: not an integer >= ${min}: ${raw}`)
  return n
}

/** What a load generator thread counted (newLoadResult/recordAnswer in bench/post-batch.mjs). */
export interface LoadResult {
  requests: number
  ok: number
  acceptedEvents: number
  failedEvents: number
  rejectedEvents: number
  statuses: Record<string, number>
  errors: { status: number; body: string }[]
  latencies: number[]
  firstRequestAt: number
  lastResponseAt: number
}

/**
 * Posts `{cmd: 'run', id, ...msg}` to a load generator thread and resolves with
 * the result of its `done` answer for that id (rejects on `error`); any other
 * message for the id goes to onProgress.
 */
export function runInThread<R>(thread: Worker, msg: object, onProgress?: (m: any) => void): Promise<R> {
  const id = Math.random()
  return new Promise((resolve, reject) => {
    const onMessage = (m: any) => {
      if (m.id !== id) return
      if (m.type !== 'done' && m.type !== 'error') return onProgress?.(m)
      thread.off('message', onMessage)
      if (m.type === 'done') resolve(m.result)
      else reject(new Error(`load generator: ${m.error}`))
    }
    thread.on('message', onMessage)
    thread.postMessage({ cmd: 'run', id, ...msg })
  })
}

/** Logs non-200 answers and rejected messages of a phase, with the first bodies. */
export function checkLoad(phase: string, r: LoadResult) {
  if (r.failedEvents > 0 || r.rejectedEvents > 0) {
    log(`${phase}: ${r.requests - r.ok} non-200 answers (${JSON.stringify(r.statuses)}), ${r.rejectedEvents} rejected messages; first bodies:`)
    for (const e of r.errors.slice(0, 5)) console.log(`    ${e.status}: ${e.body}`)
  }
}

const CLK_TCK = Number(sh('getconf', ['CLK_TCK'])) || 100

/** CPU seconds (user + system) a process has used so far; 0 when it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return 0
  }
}

/** The pids of the Postgres processes (backends, autovacuum) working on database dbName, but `exclude`. */
export function postgresPids(dbName: string, exclude: number[] = []): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || exclude.includes(Number(name))) continue
    try {
      if (!readFileSync(`/proc/${name}/comm`, 'utf8').startsWith('postgres')) continue
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dbName)) pids.push(Number(name))
    } catch {
      // the process ended meanwhile
    }
  }
  return pids
}

/** A reading of CPU seconds: of the processes `pids` together, and of each Postgres process of dbName but `exclude`. */
export function cpuReading(pids: (number | undefined)[], dbName: string, exclude: number[] = []) {
  return { own: pids.reduce<number>((a, pid) => a + cpuSeconds(pid), 0), pg: new Map(postgresPids(dbName, exclude).map((pid) => [pid, cpuSeconds(pid)])) }
}

/** CPU ms per 1,000 events between two readings (a Postgres process that ended meanwhile is not counted). */
export function cpuMsPer1000(a: ReturnType<typeof cpuReading>, b: ReturnType<typeof cpuReading>, events: number) {
  let pgS = 0
  for (const [pid, s] of b.pg) pgS += s - (a.pg.get(pid) ?? 0)
  return { goalpost: ((b.own - a.own) * 1e6) / events, postgres: (pgS * 1e6) / events }
}

/** Rows under a header, the first column left-aligned and the others right-aligned. */
export function formatTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const row = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  return [head, ...rows].map(row).join('\n')
}

export async function redisUsedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory')
  return Number(info.match(/^used_memory:(\d+)/m)?.[1] ?? 0)
}

// --- child processes ---------------------------------------------------------------

export interface Child {
  name: string
  proc: ChildProcess
  exited: Promise<number | null>
  tail: string[]
  logFile: string
}

/** Starts `node <args>` in ROOT, logging to <runDir>/<name>.log and keeping the last 40 lines. */
export function startChild(children: Set<Child>, runDir: string, name: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const logFile = path.join(runDir, `${name}.log`)
  const out = createWriteStream(logFile)
  const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const tail: string[] = []
  const onData = (chunk: Buffer) => {
    out.write(chunk)
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue
      tail.push(line)
      if (tail.length > 40) tail.shift()
    }
  }
  proc.stdout!.on('data', onData)
  proc.stderr!.on('data', onData)
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code, signal) => {
      out.end()
      resolve(code ?? (signal ? 128 : null))
    }),
  )
  const child: Child = { name, proc, exited, tail, logFile }
  children.add(child)
  exited.then(() => children.delete(child))
  return child
}

export async function stopChild(child: Child, timeoutMs = 30_000): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return
  child.proc.kill('SIGTERM')
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), timeoutMs)
  await child.exited
  clearTimeout(timer)
}

export async function waitForLine(child: Child, needle: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.tail.some((l) => l.includes(needle))) return
    if (child.proc.exitCode !== null) throw new Error(`${child.name} exited (${child.proc.exitCode}):\n${child.tail.join('\n')}`)
    await sleep(50)
  }
  throw new Error(`${child.name}: no "${needle}" within ${timeoutMs} ms:\n${child.tail.join('\n')}`)
}

export async function waitReady(child: Child, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null) throw new Error(`${child.name} exited (${child.proc.exitCode}):\n${child.tail.join('\n')}`)
    try {
      const res = await fetch(`${url}/readyz`)
      last = `${res.status} ${await res.text()}`
      if (res.status === 200) return
    } catch (err) {
      last = String(err)
    }
    await sleep(100)
  }
  throw new Error(`${child.name}: /readyz not 200 within ${timeoutMs} ms (last: ${last})`)
}

/** Never leave goalpost processes behind, whatever happens to the bench. */
export function killChildrenOnExit(children: Set<Child>) {
  process.on('exit', () => {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL')
  })
}

// --- building goalpost -----------------------------------------------------------

/**
 * Compiles the working tree with tsc into bench/.build/worktree (when src or
 * migrations are newer than the build, or always) and returns the CLI entry
 * point. The same directory bench/ingest.ts uses with its default runtime.
 */
export function compileWorktree(mode: 'auto' | 'always' | 'never' = 'auto'): string {
  const outDir = path.join(BENCH_DIR, '.build', 'worktree')
  const built = path.join(outDir, 'src/cli/index.js')
  const newestSource = Math.max(newestMtime(path.join(ROOT, 'src')), newestMtime(path.join(ROOT, 'migrations')))
  const stale = !existsSync(built) || newestSource > statSync(built).mtimeMs
  if (mode === 'always' || (mode === 'auto' && stale)) {
    log(`compiling the working tree into ${path.relative(ROOT, outDir)} (tsc)`)
    const r = spawnSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'tsconfig.json'), '--outDir', outDir, '--declaration', 'false', '--sourceMap', 'false'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    if (r.status !== 0) {
      if (!existsSync(built)) throw new Error(`tsc failed and emitted nothing:\n${r.stdout}${r.stderr}`)
      log(`WARNING: tsc reported type errors; running what it emitted:\n${(r.stdout + r.stderr).split('\n').slice(0, 8).join('\n')}`)
    }
    spawnSync('touch', [built])
  } else if (stale) log('WARNING: the bench build is older than src/ and build "never" was asked for')
  return built
}

// --- goalpost processes' environment ----------------------------------------------

export function goalpostEnv(
  run: { databaseUrl: string; redisUrl: string; writeKey: string; queuePrefix: string; ingestConcurrency?: string },
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NODE_ENV: 'development',
    DATABASE_URL: run.databaseUrl,
    REDIS_URL: run.redisUrl,
    HOST: '127.0.0.1',
    GOALPOST_WRITE_KEYS: run.writeKey,
    GOALPOST_QUEUE_PREFIX: run.queuePrefix,
    GOALPOST_LOG_LEVEL: 'info',
    ...(run.ingestConcurrency ? { GOALPOST_INGEST_CONCURRENCY: run.ingestConcurrency } : {}),
    ...extra,
  }
}

// --- profiles -----------------------------------------------------------------------

/** The table of a bench/pg-timing.mjs output file: SQL time per statement, the `top` most expensive first. */
export function formatPgTiming(file: string, label: string, top = 14): string {
  const data = JSON.parse(readFileSync(file, 'utf8')) as {
    statements: { sql: string; calls: number; totalMs: number; maxMs: number; errors: number; paramBytes: number; hist: number[] }[]
  }
  const stmts = data.statements.sort((a, b) => b.totalMs - a.totalMs)
  const total = stmts.reduce((s, x) => s + x.totalMs, 0)
  const begins = stmts.find((s) => /^BEGIN/i.test(s.sql))?.calls ?? 0
  const lines = [
    `SQL time in ${label} (client-side, call -> result; ${fmt(begins)} transactions; total ${fmt(total / 1000, 1)} s)`,
    `  ${'total s'.padStart(8)}${'share'.padStart(7)}${'calls'.padStart(9)}${'avg ms'.padStart(8)}${'ms/txn'.padStart(8)}${'max ms'.padStart(8)}  statement`,
  ]
  for (const s of stmts.slice(0, top))
    lines.push(
      `  ${fmt(s.totalMs / 1000, 2).padStart(8)}${`${fmt((100 * s.totalMs) / total)}%`.padStart(7)}${fmt(s.calls).padStart(9)}${fmt(s.totalMs / s.calls, 2).padStart(8)}` +
        `${fmt(s.totalMs / Math.max(1, begins), 2).padStart(8)}${fmt(s.maxMs, 0).padStart(8)}  ${s.sql.slice(0, 110)}`,
    )
  return lines.join('\n')
}

// --- clean-up ---------------------------------------------------------------------

/** Drops the run's database and UNLINKs the keys under `<queuePrefix>:` (SCAN, never FLUSHDB). */
export async function dropBenchResources(pgServer: string, dbName: string, redis: Redis | undefined, queuePrefix: string): Promise<void> {
  const admin = new pg.Client({ connectionString: `${pgServer}/postgres` })
  try {
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(dbName)} WITH (FORCE)`)
  } catch (err) {
    console.error(`bench: could not drop database ${dbName}: ${err}`)
  } finally {
    await admin.end().catch(() => {})
  }
  if (redis) {
    const deleted = await unlinkQueueKeys(redis, queuePrefix)
    log(`deleted ${deleted} Redis key(s) under ${queuePrefix}:, dropped database ${dbName}`)
  }
}

/** UNLINKs the keys under `<queuePrefix>:` (SCAN, never FLUSHDB); returns how many. */
export async function unlinkQueueKeys(redis: Redis, queuePrefix: string): Promise<number> {
  let cursor = '0'
  let deleted = 0
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${queuePrefix}:*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) deleted += await redis.unlink(...keys)
  } while (cursor !== '0')
  return deleted
}
