import type { Config } from '../config.ts'
import { configRevisionInForce, evaluationBacklog } from '../db/evaluation-backlog.ts'
import { oldestWaitingAt, queueDepth, wakeSchedule, type QueueDepth } from '../jobs/queue-status.ts'
import { WAKE_EVERY_MS, createIngestQueue, createMaintenanceQueue } from '../jobs/queues.ts'
import { createRedis, waitUntilReady } from '../jobs/redis.ts'
import { settlesWithin, withTimeout } from '../timeout.ts'
import { migrationHint, openDb } from './connect.ts'
import { redactUrl } from './user-errors.ts'

/** How long each dependency gets to answer: status must say "unreachable", never hang. */
const TIMEOUT_MS = 3_000
/** The counts of a large person_evaluations may take a few seconds once connected. */
const QUERY_TIMEOUT_MS = 15_000

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())
const ageSeconds = (at: number | null, now: number) => (at === null ? null : Math.max(0, Math.round((now - at) / 1000)))
const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]

interface Reach {
  url: string
  reachable: boolean
  error: string | null
}

export interface Status {
  ok: boolean
  checked_at: string
  queue_prefix: string
  postgres: Reach
  redis: Reach
  queues: { ingest: QueueDepth & { oldest_waiting_age_seconds: number | null }; maintenance: QueueDepth } | null
  wake: { every_seconds: number; last_finished_at: string | null; last_woken: number | null; next_at: string | null } | null
  evaluation: {
    /** The larger of the oldest waiting ingest batch's age and the most overdue wake-up (seconds). */
    lag_seconds: number | null
    due_people: number
    due_people_capped: boolean
    oldest_due_at: string | null
    stale_revision_people: number
    stale_revision_people_capped: boolean
  } | null
  config: { revision: number; applied_at: string | null; source: string | null } | null
}

/** Postgres answered, but a query failed (not migrated, too slow): reachable, not healthy. */
class QueryFailed extends Error {}

async function postgresPart(config: Pick<Config, 'databaseUrl'>, now: number) {
  const db = await openDb(config.databaseUrl, 'status', TIMEOUT_MS)
  try {
    return await withTimeout(
      (async () => {
        const revision = await configRevisionInForce(db)
        const backlog = await evaluationBacklog(db, now, revision?.revision ?? 0)
        return { revision, backlog }
      })(),
      QUERY_TIMEOUT_MS,
      `the status queries took longer than ${QUERY_TIMEOUT_MS} ms`,
    )
  } catch (err) {
    throw new QueryFailed(firstLine(migrationHint(err, config.databaseUrl)), { cause: err })
  } finally {
    // A query still running must not hold the command up.
    await settlesWithin(db.destroy(), 1_000)
  }
}

async function redisPart(config: Pick<Config, 'redisUrl' | 'queuePrefix'>) {
  const redis = createRedis(config.redisUrl, 'producer', config.queuePrefix)
  try {
    await waitUntilReady(redis, TIMEOUT_MS)
    // Queues only on a ready connection (src/jobs/redis.ts).
    const ingest = createIngestQueue(redis, config.queuePrefix)
    const maintenance = createMaintenanceQueue(redis, config.queuePrefix)
    try {
      return await withTimeout(
        Promise.all([queueDepth(ingest), oldestWaitingAt(ingest), queueDepth(maintenance), wakeSchedule(maintenance)]),
        TIMEOUT_MS,
        `no answer within ${TIMEOUT_MS} ms`,
      )
    } finally {
      await settlesWithin(Promise.all([ingest.close(), maintenance.close()]), 1_000)
    }
  } finally {
    redis.disconnect()
  }
}

/** Reads every part at once; a dependency that does not answer is reported, never waited for. */
export async function readStatus(config: Pick<Config, 'databaseUrl' | 'redisUrl' | 'queuePrefix'>, now = Date.now()): Promise<Status> {
  const [pg, rd] = await Promise.allSettled([postgresPart(config, now), redisPart(config)])
  const reach = (url: string, r: PromiseSettledResult<unknown>): Reach => ({
    url: redactUrl(url),
    reachable: r.status === 'fulfilled' || r.reason instanceof QueryFailed,
    error: r.status === 'rejected' ? reason(r.reason) : null,
  })
  const status: Status = {
    ok: pg.status === 'fulfilled' && rd.status === 'fulfilled',
    checked_at: new Date(now).toISOString(),
    queue_prefix: config.queuePrefix,
    postgres: reach(config.databaseUrl, pg),
    redis: reach(config.redisUrl, rd),
    queues: null,
    wake: null,
    evaluation: null,
    config: null,
  }
  let oldestWaiting: number | null | undefined
  if (rd.status === 'fulfilled') {
    const [ingest, oldest, maintenance, wake] = rd.value
    oldestWaiting = oldest
    status.queues = { ingest: { ...ingest, oldest_waiting_age_seconds: ageSeconds(oldest, now) }, maintenance }
    status.wake = {
      every_seconds: WAKE_EVERY_MS / 1000,
      last_finished_at: iso(wake.last?.finishedAt ?? null),
      last_woken: wake.last?.woken ?? null,
      next_at: iso(wake.nextAt),
    }
  }
  if (pg.status === 'fulfilled') {
    const { revision, backlog } = pg.value
    status.config = { revision: revision?.revision ?? 0, applied_at: revision?.appliedAt ?? null, source: revision?.source ?? null }
    const overdue = ageSeconds(backlog.oldestDueAt, now) ?? 0
    status.evaluation = {
      // Without Redis the queue's part is unknown: no lag figure rather than a wrong one.
      lag_seconds: oldestWaiting === undefined ? null : Math.max(overdue, ageSeconds(oldestWaiting, now) ?? 0),
      due_people: backlog.duePeople,
      due_people_capped: backlog.duePeopleCapped,
      oldest_due_at: iso(backlog.oldestDueAt),
      stale_revision_people: backlog.staleRevisionPeople,
      stale_revision_people_capped: backlog.staleRevisionPeopleCapped,
    }
  }
  return status
}

function reason(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return firstLine(err.errors[0])
  // openDb's own messages name the URL, which the status line shows already.
  return firstLine(err).replace(/^cannot reach Postgres at \S+: /, '').replace(/\. Check DATABASE_URL.*$/, '')
}

const n = (count: number, capped: boolean) => `${count}${capped ? '+' : ''}`

export function describeStatus(s: Status): string {
  const reach = (name: string, r: Reach) =>
    `  ${name.padEnd(12)}${r.reachable ? (r.error ? 'FAILING' : 'reachable') : 'UNREACHABLE'}  ${r.url}${r.error ? `: ${r.error}` : ''}`
  const lines = [`goalpost status at ${s.checked_at} (queue prefix ${s.queue_prefix})`, reach('postgres', s.postgres), reach('redis', s.redis)]
  if (s.queues) {
    const q = (name: string, d: QueueDepth, extra = '') =>
      `  ${`queue ${name}`.padEnd(20)}waiting ${d.waiting}  active ${d.active}  delayed ${d.delayed}  failed ${d.failed}${extra}`
    const age = s.queues.ingest.oldest_waiting_age_seconds
    lines.push(q('ingest', s.queues.ingest, `  oldest waiting ${age === null ? '-' : `${age} s`}`), q('maintenance', s.queues.maintenance))
  }
  if (s.wake)
    lines.push(
      `  wake-up     every ${s.wake.every_seconds} s; last finished ${s.wake.last_finished_at ?? '-'}${s.wake.last_woken === null ? '' : ` (${s.wake.last_woken} people evaluated)`}; next ${s.wake.next_at ?? '- (no worker has scheduled it)'}`,
    )
  if (s.evaluation) {
    const e = s.evaluation
    lines.push(
      `  evaluation  lag ${e.lag_seconds === null ? '? (Redis unreachable)' : `${e.lag_seconds} s`}; ${n(e.due_people, e.due_people_capped)} people due (oldest due ${e.oldest_due_at ?? '-'}); ${n(e.stale_revision_people, e.stale_revision_people_capped)} evaluated under an older configuration`,
    )
  }
  if (s.config) lines.push(`  config      ${s.config.revision === 0 ? 'none applied yet (revision 0)' : `revision ${s.config.revision}, applied ${s.config.applied_at} from ${s.config.source}`}`)
  return lines.join('\n')
}

/** `goalpost status [--json]`: exit 0, or 1 when Postgres or Redis is unreachable or failing (the reason on stderr). */
export async function statusCommand(config: Config, opts: { json?: boolean } = {}): Promise<number> {
  const status = await readStatus(config)
  console.log(opts.json ? JSON.stringify(status, null, 2) : describeStatus(status))
  for (const [name, r] of [['Postgres', status.postgres], ['Redis', status.redis]] as const)
    if (r.error) console.error(`goalpost status: ${name} ${r.reachable ? 'failing' : 'unreachable'} at ${r.url}: ${r.error}`)
  return status.ok ? 0 : 1
}
