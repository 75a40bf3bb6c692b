/**
 * Schedules (docs/configuration.md, "schedules"): the configuration's
 * schedules become BullMQ job schedulers on the maintenance queue, kept equal
 * to the saved document by the workers: saved twice, each starts once; a
 * changed one is replaced; a removed one stops; workers starting together
 * leave one scheduler each; a run is recorded in job_runs (trigger schedule).
 * Real Postgres and Redis, a database and queue prefix of this file's own.
 */
import { CronExpressionParser } from 'cron-parser'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { validateConfigDocument } from '../../src/core/config-document/index.ts'
import { applyConfig } from '../../src/db/config.ts'
import { createLogger } from '../../src/logger.ts'
import { listSchedules } from '../../src/cli/schedules.ts'
import { createMaintenanceQueue, type MaintenanceJobData } from '../../src/jobs/queues.ts'
import { createRedis } from '../../src/jobs/redis.ts'
import { configuredSchedulers, parseReconciled, reconcileSchedules, scheduleKeys } from '../../src/jobs/schedules.ts'
import { startWorkers, type RunningWorkers } from '../../src/jobs/workers.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { goalpostCli } from '../helpers/cli.ts'
import { testEnv } from '../helpers/goalpost.ts'
import { REDIS_URL } from '../helpers/env.ts'
import { deleteQueuePrefix, testQueuePrefix } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'
import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'

let database: TestDatabase
const redis: Redis = createRedis(REDIS_URL, 'worker')
const prefixes: string[] = []
const running: RunningWorkers[] = []
const log = createLogger('silent')

const campaign = { key: 'cart', trigger: { event: 'Cart Abandoned' }, goal: { event: 'Order Completed', within: '7d' }, journey_ttl: '30d' }
// Far-off cron runs: the schedulers can be inspected without anything running.
const yearly = { name: 'yearly', pattern: '0 0 1 1 *', tz: 'America/New_York', recompute: { campaign: 'cart' } }
const monthly = { name: 'monthly', pattern: '0 4 1 * *', retention: { older_than: '400d' } }

async function save(doc: object): Promise<number> {
  const v = validateConfigDocument(doc)
  if (!v.ok) throw new Error(v.errors.join('\n'))
  return (await applyConfig(database.db, v.document, { now: new Date(), source: 'test', raw: doc })).revision
}

function workersOn(prefix: string) {
  const config = loadConfig(testEnv(database, prefix))
  return async () => {
    const w = await startWorkers(config, database.db, log)
    running.push(w)
    return w
  }
}

function queueOn(prefix: string): Queue<MaintenanceJobData> {
  return createMaintenanceQueue(redis, prefix)
}

/** Every pending run of a schedule's scheduler (BullMQ names them repeat:<scheduler id>:<time>). */
async function pendingRuns(queue: Queue<MaintenanceJobData>, name: string) {
  const jobs = await queue.getJobs(['delayed', 'waiting', 'prioritized'])
  return jobs.filter((j) => j?.id?.startsWith(`repeat:schedule:${name}:`))
}

async function reconciled(prefix: string, revision: number) {
  await waitFor(async () => (parseReconciled(await redis.get(scheduleKeys(prefix).revision))?.revision ?? 0) >= revision, {
    what: `the workers reconciling revision ${revision}`,
    timeoutMs: 30_000,
    intervalMs: 100,
  })
}

const summary = async (queue: Queue<MaintenanceJobData>) =>
  (await configuredSchedulers(queue))
    .map((s) => ({ key: s.key, pattern: s.pattern ?? null, tz: s.tz ?? null, every: s.every ? Number(s.every) : null }))
    .sort((a, b) => (a.key < b.key ? -1 : 1))

beforeAll(async () => {
  database = await createTestDatabase()
})
afterAll(async () => {
  for (const w of running) await w.close()
  for (const p of prefixes) await deleteQueuePrefix(p)
  redis.disconnect()
  await database?.drop()
})

describe('schedules become BullMQ job schedulers', () => {
  it('saving lists each schedule added, changed and removed; the same schedules again change nothing', async () => {
    const apply = async (doc: object) => {
      const v = validateConfigDocument(doc)
      if (!v.ok) throw new Error(v.errors.join('\n'))
      return applyConfig(database.db, v.document, { now: new Date(), source: 'test', raw: doc })
    }
    const daily = { name: 'daily', every: '1d', recompute: { dry_run: true } }
    await apply({ campaigns: [campaign] })
    expect((await apply({ campaigns: [campaign], schedules: [daily, yearly] })).changes).toEqual([
      'schedule daily: added (every 1d: recompute all campaigns (dry run))',
      'schedule yearly: added (0 0 1 1 * America/New_York: recompute campaign cart)',
    ])
    // Key order and written-out defaults are the same schedule.
    const same = [{ recompute: { dry_run: true }, every: '24h', name: 'daily' }, { ...yearly, recompute: { campaign: 'cart', dry_run: false } }]
    expect((await apply({ campaigns: [campaign], schedules: same })).changed).toBe(false)
    expect((await apply({ campaigns: [campaign], schedules: [{ ...daily, every: '12h' }, monthly] })).changes).toEqual([
      'schedule daily: changed (every 12h: recompute all campaigns (dry run))',
      'schedule monthly: added (0 4 1 * * UTC: retention older_than 400d)',
      'schedule yearly: removed',
    ])
    expect(await database.db('schedules').orderBy('name').pluck('name')).toEqual(['daily', 'monthly'])
    await apply({ campaigns: [campaign] })
    expect(await database.db('schedules').pluck('name')).toEqual([])
  })

  it('a document with schedules saved twice starts each job once; a worker starting later changes nothing', async () => {
    const prefix = testQueuePrefix()
    prefixes.push(prefix)
    const queue = queueOn(prefix)
    const first = await save({ campaigns: [campaign], schedules: [yearly, monthly] })
    const start = workersOn(prefix)
    await start()
    await reconciled(prefix, first)
    expect(await save({ campaigns: [campaign], schedules: [yearly, monthly] })).toBe(first) // the same document: no new revision
    const second = await save({ campaigns: [{ ...campaign, name: 'Cart recovery' }], schedules: [yearly, monthly] })
    expect(second).toBeGreaterThan(first)
    await reconciled(prefix, second)
    await start() // a second worker process: it reconciles at start too
    expect(await summary(queue)).toEqual([
      { key: 'schedule:monthly', pattern: '0 4 1 * *', tz: 'UTC', every: null },
      { key: 'schedule:yearly', pattern: '0 0 1 1 *', tz: 'America/New_York', every: null },
    ])
    const yearlyRuns = await pendingRuns(queue, 'yearly')
    expect(yearlyRuns).toHaveLength(1)
    expect(await pendingRuns(queue, 'monthly')).toHaveLength(1)
    expect(yearlyRuns[0].data).toEqual({ kind: 'recompute', campaign: 'cart', dryRun: false, schedule: 'yearly' })
    // The next run is midnight on 1 January in New York, as cron-parser (BullMQ's) computes it.
    const expected = CronExpressionParser.parse('0 0 1 1 *', { tz: 'America/New_York', currentDate: new Date() }).next().getTime()
    expect(yearlyRuns[0].timestamp + (yearlyRuns[0].opts.delay ?? 0)).toBe(expected)

    // `goalpost schedules` lists them with their next run.
    const listing = await listSchedules(loadConfig(testEnv(database, prefix)))
    expect(listing.reconciled_revision).toBe(second)
    expect(listing.stale).toEqual([])
    expect(listing.schedules.map((s) => [s.name, s.description, s.next_run_at])).toEqual([
      ['monthly', '0 4 1 * * UTC: retention older_than 400d', new Date(CronExpressionParser.parse('0 4 1 * *', { tz: 'UTC', currentDate: new Date() }).next().getTime()).toISOString()],
      ['yearly', '0 0 1 1 * America/New_York: recompute campaign cart', new Date(expected).toISOString()],
    ])
    // The command: the same listing, as JSON or one line a schedule.
    const json = await goalpostCli(['schedules', '--json'], testEnv(database, prefix))
    expect(json.code, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout)).toEqual(listing)
    const text = await goalpostCli(['schedules'], testEnv(database, prefix))
    expect(text.stdout.split('\n').filter(Boolean).map((l) => l.split(/ {2,}/))).toEqual([
      ['monthly', '0 4 1 * * UTC: retention older_than 400d', `next: ${listing.schedules[0].next_run_at}`],
      ['yearly', '0 0 1 1 * America/New_York: recompute campaign cart', `next: ${listing.schedules[1].next_run_at}`],
    ])
  }, 90_000)

  it('a changed schedule is replaced (its pending run too); a removed schedule stops', async () => {
    const prefix = testQueuePrefix()
    prefixes.push(prefix)
    const queue = queueOn(prefix)
    await workersOn(prefix)()
    const changed = await save({ campaigns: [campaign], schedules: [{ ...yearly, pattern: '0 0 1 7 *', tz: 'UTC' }, monthly] })
    await reconciled(prefix, changed)
    const runs = await pendingRuns(queue, 'yearly')
    expect(runs).toHaveLength(1)
    const july = CronExpressionParser.parse('0 0 1 7 *', { tz: 'UTC', currentDate: new Date() }).next().getTime()
    expect(runs[0].timestamp + (runs[0].opts.delay ?? 0)).toBe(july)
    expect((await summary(queue)).find((s) => s.key === 'schedule:yearly')).toEqual({ key: 'schedule:yearly', pattern: '0 0 1 7 *', tz: 'UTC', every: null })

    const removed = await save({ campaigns: [campaign], schedules: [monthly] })
    await reconciled(prefix, removed)
    expect((await summary(queue)).map((s) => s.key)).toEqual(['schedule:monthly'])
    expect(await pendingRuns(queue, 'yearly')).toEqual([])
    const none = await save({ campaigns: [campaign] })
    await reconciled(prefix, none)
    expect(await summary(queue)).toEqual([])
    expect(await pendingRuns(queue, 'monthly')).toEqual([])
    // The wake-up is not a configured schedule: it stays.
    expect(await queue.getJobScheduler('wake')).toBeDefined()
  }, 60_000)

  it('two workers starting at once leave one scheduler, and one pending run, per schedule', async () => {
    const prefix = testQueuePrefix()
    prefixes.push(prefix)
    const queue = queueOn(prefix)
    const revision = await save({ campaigns: [campaign], schedules: [yearly, monthly, { name: 'daily', every: '1d', recompute: {} }] })
    const start = workersOn(prefix)
    await Promise.all([start(), start(), start()])
    await reconciled(prefix, revision)
    expect((await summary(queue)).map((s) => s.key).sort()).toEqual(['schedule:daily', 'schedule:monthly', 'schedule:yearly'])
    for (const name of ['daily', 'monthly', 'yearly']) expect(await pendingRuns(queue, name)).toHaveLength(1)
  }, 60_000)

  it('an older revision never overwrites a newer one; a restored database (numbering again, saved later) is followed', async () => {
    const prefix = testQueuePrefix()
    prefixes.push(prefix)
    const queue = queueOn(prefix)
    const hourly = { name: 'hourly', every: '1h', recompute: {} }
    const revision = await save({ campaigns: [campaign], schedules: [monthly, hourly] })
    const appliedAt = (await database.db('config_revisions').where({ revision }).first('applied_at')).applied_at.getTime()
    const key = scheduleKeys(prefix).revision
    // Redis says a newer revision (higher, and applied later) was reconciled: this one is stale.
    await redis.set(key, `${revision + 10} ${appliedAt + 60_000}`)
    expect(await reconcileSchedules(database.db, queue, redis, prefix)).toEqual({ revision: null, upserted: [], removed: [] })
    expect(await summary(queue)).toEqual([])
    expect(await redis.get(key)).toBe(`${revision + 10} ${appliedAt + 60_000}`)
    // A higher number saved earlier: another history (a restored backup); this database's latest save wins.
    await redis.set(key, `${revision + 10} ${appliedAt - 60_000}`)
    expect(await reconcileSchedules(database.db, queue, redis, prefix)).toEqual({ revision, upserted: ['hourly', 'monthly'], removed: [] })
    // Nothing changed since: nothing to do (an interval and a cron scheduler alike compare equal to their schedule).
    expect(await reconcileSchedules(database.db, queue, redis, prefix)).toEqual({ revision, upserted: [], removed: [] })
    expect(await redis.get(key)).toBe(`${revision} ${appliedAt}`)
    // Many at once, as from many processes: one scheduler, one pending run.
    await queue.removeJobScheduler('schedule:monthly')
    const passes = await Promise.all(Array.from({ length: 5 }, () => reconcileSchedules(database.db, queue, redis, prefix)))
    expect(passes.flatMap((p) => p.upserted)).toEqual(['monthly'])
    expect((await summary(queue)).map((s) => s.key)).toEqual(['schedule:hourly', 'schedule:monthly'])
    expect(await pendingRuns(queue, 'monthly')).toHaveLength(1)
    expect(await pendingRuns(queue, 'hourly')).toHaveLength(1)
  })

  it('a schedule with a short interval, and a cron one, run, and each run is recorded in job_runs with trigger schedule', async () => {
    const prefix = testQueuePrefix()
    prefixes.push(prefix)
    const queue = queueOn(prefix)
    await workersOn(prefix)()
    const revision = await save({
      campaigns: [campaign],
      schedules: [
        { name: 'quick', every: '1s', recompute: { campaign: 'cart', dry_run: true } },
        // A cron pattern with a seconds field, in a time zone.
        { name: 'tick', pattern: '*/2 * * * * *', tz: 'Asia/Kolkata', retention: { older_than: '400d' } },
      ],
    })
    await reconciled(prefix, revision)
    const tick = await waitFor(
      async () => database.db('job_runs').where({ trigger: 'schedule', schedule: 'tick' }).whereNotNull('finished_at').first(),
      { what: 'a cron run recorded', timeoutMs: 30_000, intervalMs: 200 },
    )
    expect(tick).toMatchObject({ kind: 'retention', scope: 'older_than:400d', error: null, events_deleted: 0 })
    const run = await waitFor(
      async () => database.db('job_runs').where({ trigger: 'schedule', schedule: 'quick' }).whereNotNull('finished_at').first(),
      { what: 'a scheduled run recorded', timeoutMs: 30_000, intervalMs: 200 },
    )
    expect(run).toMatchObject({ kind: 'recompute', scope: 'campaign:cart', dry_run: true, trigger: 'schedule', schedule: 'quick', error: null, journeys_added: 0 })
    expect(run.job_id).toMatch(/^repeat:schedule:quick:/)
    const stopped = await save({ campaigns: [campaign] })
    await reconciled(prefix, stopped)
    expect(await summary(queue)).toEqual([])
    expect(await pendingRuns(queue, 'quick')).toEqual([])
    expect(await pendingRuns(queue, 'tick')).toEqual([])
  }, 60_000)
})
