import type { Config } from '../config.ts'
import { describeSchedule } from '../db/config.ts'
import { loadSchedules } from '../db/schedules.ts'
import { createMaintenanceQueue } from '../jobs/queues.ts'
import { createRedis, waitUntilReady } from '../jobs/redis.ts'
import { configuredSchedulers, parseReconciled, scheduleKeys, schedulerId } from '../jobs/schedules.ts'
import { migrationHint, openDb } from './connect.ts'

export interface ScheduleListing {
  /** The configuration revision the schedules were saved in, and the one the workers last reconciled (null: never). */
  revision: number
  reconciled_revision: number | null
  schedules: Array<{
    name: string
    pattern: string | null
    tz: string | null
    every_ms: number | null
    job: Record<string, unknown>
    description: string
    /** When BullMQ queues its next run; null while no worker has picked it up yet. */
    next_run_at: string | null
  }>
  /** Schedulers in Redis that the saved configuration no longer has (the workers remove them at their next reconciliation). */
  stale: string[]
}

/** The saved schedules, with their next run as BullMQ's job schedulers say. */
export async function listSchedules(config: Pick<Config, 'databaseUrl' | 'redisUrl' | 'queuePrefix'>): Promise<ScheduleListing> {
  const db = await openDb(config.databaseUrl, 'schedules')
  const redis = createRedis(config.redisUrl, 'worker', config.queuePrefix)
  const queue = createMaintenanceQueue(redis, config.queuePrefix)
  try {
    await waitUntilReady(redis, 5_000)
    const { revision, schedules } = await loadSchedules(db).catch((err) => {
      throw migrationHint(err, config.databaseUrl)
    })
    const schedulers = new Map((await configuredSchedulers(queue)).map((s) => [s.key, s]))
    const reconciled = parseReconciled(await redis.get(scheduleKeys(config.queuePrefix).revision))
    const wanted = new Set(schedules.map((s) => schedulerId(s.name)))
    return {
      revision,
      reconciled_revision: reconciled?.revision ?? null,
      schedules: schedules.map((s) => {
        const next = schedulers.get(schedulerId(s.name))?.next
        const { name: _name, ...definition } = s
        return {
          name: s.name,
          pattern: 'pattern' in s ? s.pattern : null,
          tz: 'tz' in s ? s.tz : null,
          every_ms: 'everyMs' in s ? s.everyMs : null,
          job: { ...s.job },
          description: describeSchedule(definition),
          next_run_at: next === undefined || next === null ? null : new Date(Number(next)).toISOString(),
        }
      }),
      stale: [...schedulers.keys()].filter((k) => !wanted.has(k)),
    }
  } finally {
    await queue.close()
    redis.disconnect()
    await db.destroy()
  }
}

/** `goalpost schedules [--json]`: the configured schedules and their next run. */
export async function schedulesCommand(config: Config, opts: { json?: boolean } = {}): Promise<number> {
  const listing = await listSchedules(config)
  if (opts.json) {
    console.log(JSON.stringify(listing))
    return 0
  }
  if (listing.schedules.length === 0) console.log(`no schedules in the configuration (revision ${listing.revision})`)
  for (const s of listing.schedules)
    console.log(`${s.name.padEnd(24)} ${s.description.padEnd(56)} next: ${s.next_run_at ?? 'not scheduled yet (no worker has reconciled this revision)'}`)
  if (listing.stale.length > 0) console.log(`removed from the configuration, still in Redis until a worker reconciles: ${listing.stale.join(', ')}`)
  return 0
}
