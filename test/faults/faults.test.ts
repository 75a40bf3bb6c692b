/**
 * The fault suite: goalpost run as an operator runs it (`goalpost start`, or
 * `serve` + `worker`), on a Redis and a Postgres of this file's own, fed by
 * the real analytics-node client, while those servers and processes are
 * killed, stopped and restarted. After each fault: every acknowledged call is
 * stored exactly once (CONTRACT.md: success only once queued), the
 * conversions equal those of a fault-free run of the same workload (R3), and
 * no job is left failed. Prints the fault table (docs/operations.md).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expectedConversions } from '../helpers/fault-workload.ts'
import { PEOPLE, faultTable, runFaultScenario, type FaultContext, type Outcome, type Servers } from '../helpers/fault-scenario.ts'
import { killAllGoalposts, stopGoalpost } from '../helpers/goalpost-process.ts'
import { startPrivatePostgres, startPrivateRedis } from '../helpers/private-servers.ts'
import { waitFor } from '../helpers/wait.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const expected = expectedConversions(PEOPLE)
const outcomes: Outcome[] = []
let servers: Servers | undefined
let reference: Outcome | undefined

beforeAll(async () => {
  const [redis, postgres] = await Promise.all([startPrivateRedis(), startPrivatePostgres()])
  servers = { redis, postgres, dir: mkdtempSync(join(tmpdir(), 'goalpost-faults-')) }
})
afterAll(async () => {
  await killAllGoalposts()
  await Promise.all([servers?.redis.stop(), servers?.postgres.stop()])
  if (servers) rmSync(servers.dir, { recursive: true, force: true })
  if (outcomes.length > 0) console.log(`\nfault table (${PEOPLE} people, ${outcomes[0].sent} calls each run):\n${faultTable(outcomes)}\n`)
})

async function run(
  fault: string,
  topology: 'start' | 'split',
  inject?: (ctx: FaultContext) => Promise<void>,
  prepare?: (database: string) => Promise<void>,
): Promise<Outcome> {
  const outcome = await runFaultScenario(servers!, { fault, topology, expected, inject, prepare })
  outcomes.push(outcome)
  return outcome
}

/** Every acknowledged call stored once, the reference's conversions, no failed job. */
function expectRecovered(o: Outcome) {
  const why = `${o.fault}: HTTP ${JSON.stringify(o.statuses)}, re-sent ${o.resent}\n${o.output.slice(-15).join('\n')}`
  expect(reference, 'the fault-free reference run did not complete').toBeDefined()
  expect(o.acked, why).toBe(o.sent) // the producer re-sends what the library gave up on
  expect(o.lost, why).toBe(0)
  expect(o.stored, why).toBe(o.acked)
  expect(o.duplicates, why).toBe(0)
  expect(o.failedJobs, why).toEqual({ ingest: 0, maintenance: 0 })
  expect(o.conversions, why).toEqual(reference!.conversions)
}

describe('faults under load: nothing acknowledged is lost or doubled, conversions as without the fault (R3)', () => {
  it('fault-free reference run: the conversions the rules give (R5, R7, R9, R16, R25)', async () => {
    reference = await run('none (reference)', 'start')
    expect(reference.lost).toBe(0)
    expect(reference.stored).toBe(reference.sent)
    expect(reference.conversions).toEqual(expected)
    expect(reference.failedJobs).toEqual({ ingest: 0, maintenance: 0 })
  })

  it('Redis killed with SIGKILL and restarted on its AOF', async () => {
    const o = await run('Redis SIGKILL, restart after 2 s', 'start', async ({ servers: s }) => {
      await s.redis.kill()
      await sleep(2_000)
      await s.redis.start()
    })
    expectRecovered(o)
    // While Redis was away, the server answered 503 (retried), never another error.
    expect(Object.keys(o.statuses).filter((s) => s !== '200' && s !== '503')).toEqual([])
  })

  it('Postgres stopped with -m immediate for 10 s, then started', async () => {
    const o = await run('Postgres stop -m immediate, 10 s', 'start', async ({ servers: s }) => {
      await s.postgres.stopImmediate()
      await sleep(10_000)
      await s.postgres.start()
    })
    expectRecovered(o)
  })

  it('SIGTERM to goalpost start mid-load drains and exits 0; a restart takes over', async () => {
    let exit: unknown
    const o = await run('SIGTERM to start, restart', 'start', async (ctx) => {
      exit = await stopGoalpost(ctx.processes.start!)
      await ctx.restart('start')
    })
    expect(exit).toEqual({ code: 0, signal: null })
    expectRecovered(o)
  })

  it('a worker (serve + worker) killed with SIGKILL while it holds jobs; its jobs are taken back and a warning says so', async () => {
    let heldAtKill = 0
    const o = await run('worker SIGKILL, restart', 'split', async (ctx) => {
      // Hold the worker mid-job: a lock that stops inserts into the log keeps
      // its transaction open and its jobs active until the kill.
      const blocker = await ctx.servers.postgres.connect(ctx.database)
      try {
        await blocker.query('BEGIN')
        await blocker.query('LOCK TABLE events IN SHARE MODE')
        await waitFor(async () => (await ctx.waitingOnLocks()) > 0 && (await ctx.ingest.getActiveCount()) > 0, {
          what: 'the worker to be held mid-job',
          timeoutMs: 30_000,
          intervalMs: 20,
        })
        ctx.processes.worker!.child.kill('SIGKILL')
        expect(await ctx.processes.worker!.exited()).toEqual({ code: null, signal: 'SIGKILL' })
        heldAtKill = await ctx.ingest.getActiveCount() // left active, with locks nobody renews
      } finally {
        await blocker.query('COMMIT').finally(() => blocker.end())
      }
      await ctx.restart('worker')
    })
    expect(heldAtKill).toBeGreaterThan(0)
    expectRecovered(o)
    // One warning per ingest job taken back, by the worker that took it.
    const warnings = o.output.filter((line) => line.includes('took back a job whose lock lapsed') && line.includes('"queue":"ingest"'))
    expect(warnings.length, `${o.output.length} lines:\n${o.output.slice(-20).join('\n')}`).toBe(o.stalled)
  })

  it('Postgres read-only (default_transaction_read_only) for 5 s: jobs wait and retry, nothing is refused for good', async () => {
    const o = await run('Postgres read-only, 5 s', 'start', async ({ servers: s }) => {
      await s.postgres.sql('ALTER SYSTEM SET default_transaction_read_only = on')
      await s.postgres.sql('SELECT pg_reload_conf()')
      await sleep(5_000)
      await s.postgres.sql('ALTER SYSTEM RESET default_transaction_read_only')
      await s.postgres.sql('SELECT pg_reload_conf()')
    })
    expectRecovered(o)
  })

  it('disk full: the tablespace of the database filled up for 5 s, then space freed; jobs wait and retry', async () => {
    let diskFull = false // the filler could not add a single row
    const o = await run(
      'disk full (tablespace), 5 s',
      'start',
      async ({ servers: s, database }) => {
        // Statements writing more than the filesystem holds (1 KB rows, under
        // TOAST's threshold: not compressed), then ever smaller ones, until a
        // single row fails: the pages they added stay in the table's file
        // until the DROP below (no vacuum may truncate them away). One
        // connection throughout: a new one cannot even start on a full disk.
        const admin = await s.postgres.connect(database)
        try {
          const noVacuum = 'autovacuum_enabled = false, vacuum_truncate = false'
          await admin.query(`CREATE TABLE filler (pad text) WITH (${noVacuum}) TABLESPACE tiny`)
          for (const rows of [200_000, 100, 1]) {
            for (let fits = true; fits; ) {
              fits = await admin
                .query(`INSERT INTO filler SELECT repeat(md5(g::text), 30) FROM generate_series(1, ${rows}) g`)
                .then(() => true, (err: { code?: string }) => (err.code === '53100' ? false : Promise.reject(err)))
            }
          }
          diskFull = true
          await sleep(5_000)
          await admin.query('DROP TABLE filler') // the file is truncated at commit: the space is back
        } finally {
          await admin.end()
        }
      },
      async (database) => {
        await servers!.postgres.createTinyTablespace('tiny', 64)
        await servers!.postgres.sql(`CREATE DATABASE ${database} TABLESPACE tiny`)
      },
    )
    expect(diskFull).toBe(true)
    expect(o.retries).toBeGreaterThan(0) // goalpost's writes were refused too, and retried
    expectRecovered(o)
  })
})
