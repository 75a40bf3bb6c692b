/**
 * One fault-suite run: goalpost (`start`, or `serve` + `worker`) as child
 * processes on the private servers, a database and queue prefix of the
 * run's own, the workload sent by analytics-node, a fault injected part-way,
 * then what was stored compared with what was acknowledged.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { QueueEvents, type Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { createDb, type Knex } from '../../src/db/knex.ts'
import { QUEUE_NAMES, createIngestQueue, createMaintenanceQueue } from '../../src/jobs/queues.ts'
import { createRedis, waitUntilReady } from '../../src/jobs/redis.ts'
import { FAULT_CONFIG, faultWorkload } from './fault-workload.ts'
import { ADMIN_TOKEN, WEBHOOK_SECRET, WRITE_KEY } from './goalpost.ts'
import { runGoalpost, spawnGoalpost, stopGoalpost, waitUntilServing, type GoalpostProcess } from './goalpost-process.ts'
import { freePort, type PrivatePostgres, type PrivateRedis } from './private-servers.ts'
import { SegmentProducer } from './segment-producer.ts'
import { waitFor } from './wait.ts'

export interface Servers {
  redis: PrivateRedis
  postgres: PrivatePostgres
  /** A temp dir for the config file. */
  dir: string
}

export type Role = 'start' | 'serve' | 'worker'

export interface FaultContext {
  servers: Servers
  url: string
  /** The run's database name on the private cluster. */
  database: string
  processes: Partial<Record<Role, GoalpostProcess>>
  /** Starts `role` again (after a kill or stop) and waits until it is up. */
  restart(role: Role): Promise<GoalpostProcess>
  ingest: Queue
  db: Knex
  /** goalpost's inserts into the log that wait for a lock: ingest jobs held mid-transaction. */
  waitingOnLocks(): Promise<number>
}

export interface Outcome {
  fault: string
  sent: number
  acked: number
  stored: number
  duplicates: number
  lost: number
  conversionsExpected: number
  conversionsFound: number
  /** From the repair until every call made by then was acknowledged and stored; null without a fault. */
  recoverSeconds: number | null
  /** `campaign|person|value` of every conversion, sorted. */
  conversions: string[]
  failedJobs: { ingest: number; maintenance: number }
  /** Calls analytics-node gave up on and the producer re-sent. */
  resent: number
  /** Ingest jobs that failed an attempt and were retried after a backoff. */
  retries: number
  /** Ingest jobs taken back from a worker whose lock lapsed (stalled). */
  stalled: number
  statuses: Record<string, number>
  /** What the processes running at the end logged, for failure messages and log checks. */
  output: string[]
}

export const PEOPLE = 600
export const RATE = 500

let runs = 0

/**
 * Runs the workload once. `inject` is called once a third of it has been
 * sent, does its damage, repairs it, and returns; the run then measures how
 * long until every call made before the repair is acknowledged and stored.
 */
export async function runFaultScenario(
  servers: Servers,
  { fault, topology, expected, prepare, inject }: {
    fault: string
    topology: 'start' | 'split'
    expected: string[]
    /** Before goalpost starts: e.g. create the run's database somewhere special. */
    prepare?: (database: string) => Promise<void>
    inject?: (ctx: FaultContext) => Promise<void>
  },
): Promise<Outcome> {
  const run = ++runs
  const configFile = join(servers.dir, 'goalpost.yaml')
  writeFileSync(configFile, FAULT_CONFIG)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const database = `faults_${run}`
  const databaseUrl = `${servers.postgres.serverUrl}/${database}`
  const env = {
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    REDIS_URL: servers.redis.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    GOALPOST_WRITE_KEYS: WRITE_KEY,
    GOALPOST_WEBHOOK_SECRET: WEBHOOK_SECRET,
    GOALPOST_ADMIN_TOKEN: ADMIN_TOKEN,
    GOALPOST_CONFIG: configFile,
    GOALPOST_QUEUE_PREFIX: `faults${run}`,
    GOALPOST_LOG_LEVEL: 'warn',
  }
  const processes: FaultContext['processes'] = {}
  const spawnRole = async (role: Role) => {
    const proc = spawnGoalpost(role, env)
    processes[role] = proc
    if (role !== 'worker') await waitUntilServing(url, proc)
    return proc
  }
  let redis: Redis | undefined
  let db: Knex | undefined
  const queues: Queue[] = []
  let events: QueueEvents | undefined
  let eventsConnection: Redis | undefined
  let retries = 0
  let stalled = 0
  const producer = new SegmentProducer(url, WRITE_KEY)
  try {
    await prepare?.(database)
    if (topology === 'start') await spawnRole('start')
    else {
      await runGoalpost('migrate', env)
      await Promise.all([spawnRole('serve'), spawnRole('worker')])
    }
    redis = createRedis(servers.redis.url, 'worker', `faults-check-${run}`)
    await waitUntilReady(redis)
    const ingest = createIngestQueue(redis, env.GOALPOST_QUEUE_PREFIX)
    const maintenance = createMaintenanceQueue(redis, env.GOALPOST_QUEUE_PREFIX)
    queues.push(ingest, maintenance)
    for (const q of queues) q.on('error', () => {}) // a Redis being killed is the point
    eventsConnection = createRedis(servers.redis.url, 'worker', `faults-events-${run}`)
    events = new QueueEvents(QUEUE_NAMES.ingest, { connection: eventsConnection, prefix: env.GOALPOST_QUEUE_PREFIX })
    events.on('error', () => {})
    events.on('delayed', () => retries++)
    events.on('stalled', () => stalled++)
    await events.waitUntilReady()
    db = createDb(databaseUrl, { poolMax: 2, applicationName: 'goalpost-faults-check' })
    const check = db
    const ctx: FaultContext = {
      servers,
      url,
      database,
      processes,
      restart: spawnRole,
      ingest,
      db,
      async waitingOnLocks() {
        const { rows } = await check.raw(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'goalpost' AND wait_event_type = 'Lock'
              AND query LIKE '%INSERT INTO events%'`,
        )
        return rows[0].n as number
      },
    }
    const storedOf = async (ids: string[]) =>
      Number((await check.raw('SELECT count(*)::int AS n FROM events WHERE message_id = ANY(?)', [ids])).rows[0].n)

    const phases = faultWorkload(PEOPLE)
    const sending = producer.run(phases, RATE)
    let recoverSeconds: number | null = null
    if (inject) {
      await producer.reached(1 / 3)
      await inject(ctx)
      const repairedAt = Date.now()
      // Every call made before the repair: acknowledged (answers still in
      // flight at the repair, or retried by the library, come in later) and stored.
      const byRepair = [...producer.issued]
      await waitFor(() => byRepair.every((id) => producer.acked.has(id)) && storedOf(byRepair).then((n) => n === byRepair.length, () => false), {
        what: 'the calls made before the repair to be acknowledged and stored',
        timeoutMs: 120_000,
        intervalMs: 100,
      }).catch(() => undefined) // what is missing shows as lost below
      recoverSeconds = (Date.now() - repairedAt) / 1000
    }
    await sending
    await producer.close()
    const acked = [...producer.acked]
    await waitFor(
      async () => {
        const c = await ingest.getJobCounts('waiting', 'active', 'delayed', 'prioritized')
        return Object.values(c).every((n) => n === 0) && (await storedOf(acked)) === acked.length
      },
      { what: 'every acknowledged call to be stored and the ingest queue to be idle', timeoutMs: 120_000, intervalMs: 200 },
    ).catch(() => undefined)

    const sent = new Set(phases.flat().map((c) => c.params.messageId))
    const rows: { message_id: string }[] = await check('events').select('message_id')
    const storedIds = new Set(rows.map((r) => r.message_id))
    const conversions = (await check('conversions').select('campaign_key', 'person_id', 'value'))
      .map((c) => `${c.campaign_key}|${c.person_id}|${Number(c.value)}`)
      .sort()
    return {
      fault,
      sent: sent.size,
      acked: acked.length,
      stored: acked.filter((id) => storedIds.has(id)).length,
      duplicates: rows.length - storedIds.size + [...storedIds].filter((id) => !sent.has(id)).length,
      lost: acked.filter((id) => !storedIds.has(id)).length,
      conversionsExpected: expected.length,
      conversionsFound: conversions.length,
      recoverSeconds,
      conversions,
      failedJobs: {
        ingest: (await ingest.getJobCounts('failed')).failed ?? 0,
        maintenance: (await maintenance.getJobCounts('failed')).failed ?? 0,
      },
      resent: producer.failures,
      retries,
      stalled,
      statuses: Object.fromEntries(producer.statuses),
      output: Object.values(processes).flatMap((p) => p.output),
    }
  } finally {
    await producer.close().catch(() => undefined)
    await Promise.all(Object.values(processes).map((p) => stopGoalpost(p)))
    for (const q of queues) await q.close().catch(() => undefined)
    await events?.close().catch(() => undefined)
    eventsConnection?.disconnect()
    redis?.disconnect()
    await db?.destroy()
  }
}

const pad = (v: unknown, n: number) => String(v).padStart(n)

/** The fault table, as printed by the suite and copied into docs/operations.md. */
export function faultTable(outcomes: readonly Outcome[]): string {
  const head =
    '| fault | sent | acked | stored | duplicates | lost | conversions expected/found | seconds to recover | HTTP 503s | calls re-sent | job retries | jobs taken back |'
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
  const lines = outcomes.map(
    (o) =>
      `| ${o.fault} | ${pad(o.sent, 5)} | ${pad(o.acked, 5)} | ${pad(o.stored, 5)} | ${o.duplicates} | ${o.lost} | ${o.conversionsExpected}/${o.conversionsFound} | ${
        o.recoverSeconds === null ? '–' : o.recoverSeconds.toFixed(1)
      } | ${o.statuses['503'] ?? 0} | ${o.resent} | ${o.retries} | ${o.stalled} |`,
  )
  return [head, rule, ...lines].join('\n')
}
