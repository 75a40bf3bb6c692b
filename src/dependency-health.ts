import type { Redis } from 'ioredis'
import type { Logger } from './logger.ts'

/**
 * What an operator sees when Postgres or Redis goes away: one warning when a
 * dependency becomes unreachable, a reminder at most every `repeatMs` while it
 * stays away (with how many errors it caused meanwhile), and one info line
 * with the outage's duration when it is back. No stack traces for these
 * expected, transient errors: they are retried (BullMQ backoff, ioredis and
 * knex reconnects) and lose nothing. Anything else is logged by the caller as
 * the error it is.
 */

export type Dependency = 'postgres' | 'redis'

const NAMES: Record<Dependency, string> = { postgres: 'Postgres', redis: 'Redis' }

/** Node socket errors a lost or refused connection raises. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED'])
/**
 * SQLSTATEs of a Postgres that cannot take writes for now: connection
 * failures (class 08), shutting down or starting (57P01-03), too many
 * connections (53300), disk full (53100), read-only (25006, e.g. a standby
 * or default_transaction_read_only). Jobs retry them and lose nothing.
 */
const POSTGRES_DOWN = /^(08...|57P01|57P02|57P03|53300|53100|25006)$/
/** Messages pg and knex/tarn give a lost Postgres connection (they carry no code). */
const POSTGRES_LOST = [
  /Connection terminated/i,
  /Timeout acquiring a connection/i,
  /Client has encountered a connection error/i,
  /the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)/i,
  /terminating connection due to administrator command/i,
]
/** What ioredis says when Redis is away (commands refused or cut off). */
const REDIS_LOST = [/Connection is closed/i, /Stream isn't writeable/i, /max retries per request/i, /Redis was not reachable/i]

/**
 * Which dependency a transient connection error is about, or null when it is
 * not one. A bare socket error (ECONNREFUSED…) names no dependency: it is
 * `source`'s, the one the caller was talking to.
 */
export function transientDependency(err: unknown, source: Dependency): Dependency | null {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message = '', name = '' } = e as { code?: unknown; message?: string; name?: string }
    if (typeof code === 'string' && POSTGRES_DOWN.test(code)) return 'postgres'
    if (name === 'MaxRetriesPerRequestError' || REDIS_LOST.some((re) => re.test(message))) return 'redis'
    if (POSTGRES_LOST.some((re) => re.test(message))) return 'postgres'
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return source
    if (e instanceof AggregateError) {
      const inner = e.errors.map((x) => transientDependency(x, source)).find((d) => d !== null)
      if (inner) return inner
    }
  }
  return null
}

/** One short line for an error: its code and message, never its stack or the statement it ran. */
export function errorSummary(err: unknown): string {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown }
  const text = typeof message === 'string' && message ? message.split('\n')[0] : String(err)
  const short = text.length > 200 ? `${text.slice(0, 200)}…` : text
  return typeof code === 'string' && !short.includes(code) ? `${code}: ${short}` : short
}

interface Outage {
  since: number
  errors: number
  lastLoggedAt: number
  cause: string
}

export class DependencyHealth {
  private readonly outages = new Map<Dependency, Outage>()
  private readonly redisConnections = new Set<Redis>()

  constructor(
    private readonly log: Logger,
    private readonly repeatMs = 60_000,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The dependency failed with `err`: logs only the first failure of an outage and rate-limited reminders. */
  down(dep: Dependency, err: unknown): void {
    const now = this.clock()
    const cause = errorSummary(err)
    const outage = this.outages.get(dep)
    if (!outage) {
      this.outages.set(dep, { since: now, errors: 1, lastLoggedAt: now, cause })
      this.log.warn({ dependency: dep, cause }, `${NAMES[dep]} unreachable since ${new Date(now).toISOString()}; retrying`)
      return
    }
    outage.errors++
    outage.cause = cause
    if (now - outage.lastLoggedAt >= this.repeatMs) {
      outage.lastLoggedAt = now
      this.log.warn(
        { dependency: dep, cause, downMs: now - outage.since, errors: outage.errors },
        `${NAMES[dep]} still unreachable after ${Math.round((now - outage.since) / 1000)} s (${outage.errors} errors); retrying`,
      )
    }
  }

  /** The dependency answered: ends its outage, if any, with one line. */
  up(dep: Dependency): void {
    const outage = this.outages.get(dep)
    if (!outage) return
    this.outages.delete(dep)
    const downMs = this.clock() - outage.since
    this.log.info({ dependency: dep, downMs, errors: outage.errors }, `${NAMES[dep]} reachable again after ${(downMs / 1000).toFixed(1)} s (${outage.errors} errors meanwhile)`)
  }

  /**
   * Follows a Redis connection: its errors open an outage, and its 'ready'
   * (after a reconnect) ends it once every connection this process watches is
   * ready again; one reconnecting before the others would otherwise end the
   * outage while the others' commands still fail, and open it again.
   */
  watchRedis(redis: Redis): void {
    this.redisConnections.add(redis)
    redis.on('error', (err) => this.down('redis', err))
    redis.on('ready', () => {
      if ([...this.redisConnections].every((r) => r.status === 'ready')) this.up('redis')
    })
    redis.once('end', () => this.redisConnections.delete(redis))
  }

  /**
   * knex's own logger (its `log` option): the connection errors it would
   * print on stderr ("Connection Error: …", "Acquire connection error: …")
   * become part of the Postgres outage; anything else goes to the log.
   */
  knexLogger(): { warn(m: unknown): void; error(m: unknown): void; deprecate(m: unknown): void; debug(m: unknown): void } {
    const text = (m: unknown) => (typeof m === 'string' ? m : errorSummary(m))
    const route = (level: 'warn' | 'error') => (m: unknown) => {
      const line = text(m)
      if (/^(Connection Error|Acquire connection error)/i.test(line)) this.down('postgres', new Error(line.split('\n')[0]))
      else this.log[level]({ component: 'knex' }, line.split('\n')[0])
    }
    return { warn: route('warn'), error: route('error'), deprecate: route('warn'), debug: (m) => this.log.debug({ component: 'knex' }, text(m)) }
  }

  isDown(dep: Dependency): boolean {
    return this.outages.has(dep)
  }

  /**
   * Routes an error: a transient connection error ends up in down() and
   * returns true; anything else returns false for the caller to log in full.
   */
  absorb(err: unknown, source: Dependency): boolean {
    const dep = transientDependency(err, source)
    if (!dep) return false
    this.down(dep, err)
    return true
  }
}
