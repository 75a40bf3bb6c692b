/**
 * Where a persisted batch spends its time inside Postgres, statement by
 * statement: `npx tsx bench/sql-explain.ts [--build-dir DIR] [--preload N] [--batches N]`.
 *
 * Uses the compiled goalpost that `npm run bench` leaves in bench/.build/
 * (default: bench/.build/worktree; `--build-dir bench/.build/ref-…` for a
 * commit), on a database of its own (dropped at the end):
 *   1. preloads N events through persistBatch (the worker's code, in process,
 *      no HTTP or Redis), so indexes have a realistic size;
 *   2. timed pass: `--batches` more batches on one connection, every statement
 *      timed client-side (no concurrency: no lock waits);
 *   3. explain pass: the same number of new batches, each statement first run
 *      as EXPLAIN (ANALYZE, BUFFERS) inside a savepoint that is rolled back,
 *      then for real: server-side planning and execution time per statement.
 * The batches are the load generator's (bench/loadgen-worker.mjs). `--config
 * bench/config.yaml` applies a configuration first (builds whose persistBatch
 * evaluates people in the batch's transaction).
 */
import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
// @ts-expect-error plain JS module without types
import { buildBatch } from './loadgen-worker.mjs'

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
const { values: flags } = parseArgs({
  options: {
    'build-dir': { type: 'string', default: path.join(BENCH_DIR, '.build', 'worktree') },
    preload: { type: 'string', default: '100000' },
    batches: { type: 'string', default: '30' },
    'batch-size': { type: 'string', default: '100' },
    users: { type: 'string', default: '50000' },
    plans: { type: 'string', default: '' },
    config: { type: 'string', default: '' },
  },
})
const buildDir = path.resolve(flags['build-dir']!)
if (!existsSync(path.join(buildDir, 'src/jobs/persist-batch.js')))
  throw new Error(`${buildDir}: no compiled goalpost; run npm run bench once (it compiles into bench/.build/)`)
const preload = Number(flags.preload)
const batches = Number(flags.batches)
const batchSize = Number(flags['batch-size'])
const pgServer = process.env.BENCH_PG_SERVER_URL ?? 'postgres://postgres@127.0.0.1:5432'
const tag = randomBytes(4).toString('hex')
const dbName = `goalpost_explain_${tag}`
const databaseUrl = `${pgServer}/${dbName}`

const mod = (p: string) => import(pathToFileURL(path.join(buildDir, p)).href)
const { migrateToLatest } = await mod('src/db/migrate.js')
const { createDb } = await mod('src/db/knex.js')
const { persistBatch } = await mod('src/jobs/persist-batch.js')
const { deliveryEventTable } = await mod('src/segment/delivery-events.js')
const { normaliseMessage } = await mod('src/segment/normalise.js')

const cfg = { seed: 0x5eed, runTag: tag, users: Number(flags.users), deliveries: Math.max(1, Math.round((preload + 2 * batches * batchSize) * 0.05)), batchOffset: 0 }
let batchNo = 0
function nextBatch() {
  const body = JSON.parse(buildBatch(batchNo++, batchSize, cfg).toString('utf8'))
  const receivedAt = new Date().toISOString()
  return body.batch.map((m: unknown) => {
    const r = normaliseMessage(m, { receivedAt })
    if (!r.ok) throw new Error(`generated message invalid: ${JSON.stringify(r.error)}`)
    return r.message
  })
}

// --- statement instrumentation --------------------------------------------------------

type Mode = 'off' | 'time' | 'explain'
let mode: Mode = 'off'
interface Stat {
  sql: string
  calls: number
  clientMs: number
  planMs: number
  execMs: number
  hit: number
  read: number
  dirtied: number
  written: number
  explained: number
  plan?: string
}
const stats = new Map<string, Stat>()
const keyOf = (text: string) => text.replace(/\s+/g, ' ').trim().slice(0, 120)
const stat = (text: string) => {
  const key = keyOf(text)
  let s = stats.get(key)
  if (!s) stats.set(key, (s = { sql: key, calls: 0, clientMs: 0, planMs: 0, execMs: 0, hit: 0, read: 0, dirtied: 0, written: 0, explained: 0 }))
  return s
}
const CONTROL = /^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)/i
const planTexts: string[] = []

type Cb = (err: Error | null, res?: unknown) => void
const original = pg.Client.prototype.query as (this: pg.Client, ...args: unknown[]) => unknown
const run = (client: pg.Client, config: unknown, values?: unknown) =>
  new Promise<any>((resolve, reject) => original.call(client, config, values, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))))

pg.Client.prototype.query = function (this: pg.Client, config: any, values?: any, callback?: any): any {
  const text: string | undefined = typeof config === 'string' ? config : config?.text
  const cb: Cb | undefined = typeof values === 'function' ? values : typeof callback === 'function' ? callback : undefined
  if (mode === 'off' || !text || !cb) return original.apply(this, arguments as unknown as unknown[])
  const vals = typeof values === 'function' ? config?.values : values
  const s = stat(text)
  const client = this
  ;(async () => {
    if (mode === 'explain' && !CONTROL.test(text)) {
      await run(client, 'SAVEPOINT bench_explain')
      const res = await run(client, { text: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, values: vals })
      await run(client, 'ROLLBACK TO SAVEPOINT bench_explain')
      const [root] = res.rows[0]['QUERY PLAN']
      s.explained++
      s.planMs += root['Planning Time']
      s.execMs += root['Execution Time']
      const sum = (node: any, k: string): number => (node[k] ?? 0)
      s.hit += sum(root.Plan, 'Shared Hit Blocks')
      s.read += sum(root.Plan, 'Shared Read Blocks')
      s.dirtied += sum(root.Plan, 'Shared Dirtied Blocks')
      s.written += sum(root.Plan, 'Shared Written Blocks')
      if (!s.plan) {
        const t = await run(client, 'SAVEPOINT bench_explain')
          .then(() => run(client, { text: `EXPLAIN (ANALYZE, BUFFERS) ${text}`, values: vals }))
          .finally(() => run(client, 'ROLLBACK TO SAVEPOINT bench_explain'))
        s.plan = t.rows.map((r: any) => r['QUERY PLAN']).join('\n')
        planTexts.push(`-- ${s.sql}\n${s.plan}\n`)
      }
    }
    const t0 = performance.now()
    try {
      const res = await run(client, config, vals)
      if (mode === 'time') {
        s.calls++
        s.clientMs += performance.now() - t0
      }
      cb(null, res)
    } catch (err) {
      cb(err as Error)
    }
  })().catch((err) => cb(err))
}

// --- run -------------------------------------------------------------------------------

const admin = new pg.Client({ connectionString: `${pgServer}/postgres` })
await admin.connect()
const db = createDb(databaseUrl, { poolMax: 4 })
try {
  await migrateToLatest(databaseUrl)
  // Older builds take the delivery table; newer ones the evaluation context (configuration in force).
  let table: unknown = deliveryEventTable()
  if (existsSync(path.join(buildDir, 'src/jobs/config-cache.js'))) {
    if (flags.config) {
      const { applyConfigFile } = await mod('src/cli/apply.js')
      await applyConfigFile(db, path.resolve(flags.config), { now: new Date(), source: 'bench' })
    }
    const { ConfigCache } = await mod('src/jobs/config-cache.js')
    table = await new ConfigCache(db).get()
  } else if (flags.config) throw new Error('--config: this build does not evaluate in persistBatch')
  const t0 = performance.now()
  const inFlight = new Set<Promise<unknown>>()
  for (let i = 0; i < Math.ceil(preload / batchSize); i++) {
    const p = persistBatch(db, 'api', nextBatch(), table).finally(() => inFlight.delete(p))
    inFlight.add(p)
    if (inFlight.size >= 4) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  console.log(`preloaded ${preload} events in ${((performance.now() - t0) / 1000).toFixed(1)} s (in process, 4 at a time)`)
  await db.raw('ANALYZE')

  mode = 'time'
  const t1 = performance.now()
  for (let i = 0; i < batches; i++) await persistBatch(db, 'api', nextBatch(), table)
  const timedMs = performance.now() - t1
  mode = 'explain'
  for (let i = 0; i < batches; i++) await persistBatch(db, 'api', nextBatch(), table)
  mode = 'off'

  const all = [...stats.values()].sort((a, b) => b.clientMs - a.clientMs)
  const clientTotal = all.reduce((a, s) => a + s.clientMs, 0)
  console.log(
    `\n${batches} batches of ${batchSize} on one connection: ${(timedMs / batches).toFixed(2)} ms per batch wall ` +
      `(${((batches * batchSize) / (timedMs / 1000)).toFixed(0)} events/s), of which SQL round trips ${(clientTotal / batches).toFixed(2)} ms`,
  )
  console.log(`${'calls/b'.padStart(8)}${'client ms/b'.padStart(12)}${'plan ms/b'.padStart(10)}${'exec ms/b'.padStart(10)}${'buf hit/b'.padStart(10)}${'dirtied/b'.padStart(10)}  statement`)
  for (const s of all) {
    const per = (x: number, n: number) => (n > 0 ? x / n : 0)
    const e = s.explained / batches // statements explained per batch
    console.log(
      `${(s.calls / batches).toFixed(1).padStart(8)}${(s.clientMs / batches).toFixed(2).padStart(12)}` +
        `${(per(s.planMs, s.explained) * e).toFixed(2).padStart(10)}${(per(s.execMs, s.explained) * e).toFixed(2).padStart(10)}` +
        `${(per(s.hit, s.explained) * e).toFixed(0).padStart(10)}${(per(s.dirtied, s.explained) * e).toFixed(0).padStart(10)}  ${s.sql.slice(0, 100)}`,
    )
  }
  const out = flags.plans || path.join(BENCH_DIR, '.runs', `explain-${tag}.txt`)
  writeFileSync(out, planTexts.join('\n'))
  console.log(`\nfirst plan of each statement: ${path.relative(process.cwd(), out)}`)
} finally {
  mode = 'off'
  await db.destroy()
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(dbName)} WITH (FORCE)`).catch(() => {})
  await admin.end()
}
