import { randomUUID } from 'node:crypto'
import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Knex } from 'knex'
import { canonicalJson, type ScheduleDef } from '../core/config-document/index.ts'
import { loadSchedules } from '../db/schedules.ts'
import type { DependencyHealth } from '../dependency-health.ts'
import type { Logger } from '../logger.ts'
import { QUEUE_NAMES, type MaintenanceJobData } from './queues.ts'

/**
 * The configuration's `schedules` as BullMQ job schedulers on the
 * maintenance queue, one per schedule (`schedule:<name>`), kept equal to the
 * saved document. Every worker process reconciles when it starts and when
 * its ConfigCache sees a new revision, so every way of saving (`goalpost
 * apply`, `PUT /admin/config`, GOALPOST_CONFIG) is followed within seconds,
 * wherever it ran. Reconciliations run one at a time across processes (a
 * Redis lock), each reading the saved schedules afresh, and the revision
 * last reconciled is kept in Redis: an older revision never overwrites a
 * newer one. BullMQ's schedulers themselves make sure a run is queued once,
 * however many workers upsert the same one.
 */

export const SCHEDULER_PREFIX = 'schedule:'
export const schedulerId = (name: string) => `${SCHEDULER_PREFIX}${name}`

/** What a schedule's jobs carry: the job and the schedule's name (job_runs' trigger 'schedule'). */
export function scheduleJobData(def: ScheduleDef): MaintenanceJobData {
  const job = def.job
  if (job.kind === 'retention') return { kind: 'retention', olderThanMs: job.olderThanMs, schedule: def.name }
  return job.campaign === undefined
    ? { kind: 'recompute', dryRun: job.dryRun, schedule: def.name }
    : { kind: 'recompute', campaign: job.campaign, dryRun: job.dryRun, schedule: def.name }
}

const repeatOptions = (def: ScheduleDef) => ('everyMs' in def ? { every: def.everyMs } : { pattern: def.pattern, tz: def.tz })

/** A failed scheduled run is retried a few times; the next one comes anyway. */
const SCHEDULED_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 10_000 },
  removeOnComplete: { count: 100 },
  removeOnFail: { age: 7 * 24 * 3600 },
}

interface SchedulerInfo {
  key: string
  pattern?: string | null
  tz?: string | null
  every?: number | string | null
  next?: number | null
  template?: { data?: unknown }
}

function sameScheduler(s: SchedulerInfo, def: ScheduleDef): boolean {
  const want = repeatOptions(def)
  const every = s.every === undefined || s.every === null ? undefined : Number(s.every)
  return (
    every === ('every' in want ? want.every : undefined) &&
    (s.pattern ?? undefined) === ('pattern' in want ? want.pattern : undefined) &&
    (s.tz ?? undefined) === ('tz' in want ? want.tz : undefined) &&
    canonicalJson(s.template?.data ?? null) === canonicalJson(scheduleJobData(def))
  )
}

export const scheduleKeys = (prefix: string) => ({
  lock: `${prefix}:${QUEUE_NAMES.maintenance}:schedules:lock`,
  revision: `${prefix}:${QUEUE_NAMES.maintenance}:schedules:revision`,
})

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`

/**
 * The revision last reconciled is stored as "<revision> <applied_at ms>". One
 * is newer than another when both its number and its time are: a restored
 * backup (or another database on the same prefix) starts numbering again,
 * and its next save is newer by time, so it is followed, not ignored.
 */
const isNewer = (a: { revision: number; appliedAt: number }, b: { revision: number; appliedAt: number }) =>
  a.revision > b.revision && a.appliedAt > b.appliedAt
export function parseReconciled(value: string | null): { revision: number; appliedAt: number } | null {
  const [revision, appliedAt] = (value ?? '').split(' ').map(Number)
  return value === null || !Number.isFinite(revision) ? null : { revision, appliedAt: Number.isFinite(appliedAt) ? appliedAt : 0 }
}
// Compare and set, atomically: the stored revision never goes back to an older one.
const ADVANCE = `local cur = redis.call('GET', KEYS[1])
if cur then
  local rev, at = string.match(cur, '^(%d+) (%d+)$')
  if rev and tonumber(rev) > tonumber(ARGV[1]) and tonumber(at) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2])
return 1`

const LOCK_MS = 30_000

export interface Reconciled {
  /** The configuration revision reconciled, or null when a newer one already was. */
  revision: number | null
  upserted: string[]
  removed: string[]
}

/** All the queue's job schedulers of configured schedules. */
export async function configuredSchedulers(queue: Queue<MaintenanceJobData>): Promise<SchedulerInfo[]> {
  const all = (await queue.getJobSchedulers(0, -1, true)) as SchedulerInfo[]
  return all.filter((s) => s.key.startsWith(SCHEDULER_PREFIX))
}

/** Makes the queue's schedulers equal the saved schedules (see above); one pass, under the lock. */
export async function reconcileSchedules(db: Knex, queue: Queue<MaintenanceJobData>, redis: Redis, prefix: string): Promise<Reconciled> {
  const keys = scheduleKeys(prefix)
  const token = randomUUID()
  for (let attempt = 0; ; attempt++) {
    if ((await redis.set(keys.lock, token, 'PX', LOCK_MS, 'NX')) === 'OK') break
    if (attempt >= 150) throw new Error(`another process has held the schedules lock (${keys.lock}) for over 30 s; will try again at the next revision or start`)
    await new Promise((r) => setTimeout(r, 200))
  }
  try {
    const stored = parseReconciled(await redis.get(keys.revision))
    const { revision, appliedAt, schedules } = await loadSchedules(db)
    if (stored !== null && isNewer(stored, { revision, appliedAt })) return { revision: null, upserted: [], removed: [] }
    const existing = new Map((await configuredSchedulers(queue)).map((s) => [s.key, s]))
    const upserted: string[] = []
    const removed: string[] = []
    for (const def of schedules) {
      const id = schedulerId(def.name)
      const now = existing.get(id)
      if (now && sameScheduler(now, def)) continue
      // A changed one is replaced: its pending run goes, the next follows the new timing.
      if (now) await queue.removeJobScheduler(id)
      await queue.upsertJobScheduler(id, repeatOptions(def), { name: id, data: scheduleJobData(def), opts: SCHEDULED_JOB_OPTIONS })
      upserted.push(def.name)
    }
    const wanted = new Set(schedules.map((d) => schedulerId(d.name)))
    for (const id of existing.keys())
      if (!wanted.has(id)) {
        await queue.removeJobScheduler(id)
        removed.push(id.slice(SCHEDULER_PREFIX.length))
      }
    await redis.eval(ADVANCE, 1, keys.revision, String(revision), String(appliedAt))
    return { revision, upserted, removed }
  } finally {
    await redis.eval(RELEASE, 1, keys.lock, token)
  }
}

/** How long after a failed reconciliation (Postgres or Redis away) the next is tried. */
const RETRY_MS = 10_000

/** A worker process's reconciliations, one at a time; a request while one runs is served by one more pass after it. */
export class ScheduleSync {
  private running: Promise<void> | null = null
  private again = false
  private retry: NodeJS.Timeout | null = null
  private stopped = false

  constructor(
    private readonly db: Knex,
    private readonly queue: Queue<MaintenanceJobData>,
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly log: Logger,
    /** Routes Postgres or Redis being away to the once-per-outage log. */
    private readonly health?: DependencyHealth,
  ) {}

  /** Resolves once a pass that started after this call has finished (a failed pass is tried again RETRY_MS later). */
  sync(): Promise<void> {
    if (this.stopped) return Promise.resolve()
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = (async () => {
      do {
        this.again = false
        try {
          const r = await reconcileSchedules(this.db, this.queue, this.redis, this.prefix)
          if (r.upserted.length > 0 || r.removed.length > 0) this.log.info(r, 'job schedulers follow the saved schedules')
        } catch (err) {
          if (!this.health?.absorb(err, 'postgres'))
            this.log.error({ err }, `could not reconcile the job schedulers with the saved schedules; trying again in ${RETRY_MS / 1000} s`)
          this.retry ??= setTimeout(() => {
            this.retry = null
            void this.sync()
          }, RETRY_MS).unref()
        }
      } while (this.again)
    })().finally(() => {
      this.running = null
    })
    return this.running
  }

  /** No more passes (the workers are closing). */
  stop(): void {
    this.stopped = true
    if (this.retry) clearTimeout(this.retry)
  }
}
