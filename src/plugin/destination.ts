import type { Context, Plugin } from '@segment/analytics-node'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { INGEST_JOB_OPTIONS, EVENT_STREAM, QUEUE_NAMES, type IngestJobData } from '../jobs/queues.ts'
import { normaliseMessage, type IngestMessage } from '../segment/normalise.ts'
import { withTimeout } from '../timeout.ts'

export interface GoalpostDestinationOptions {
  /** Redis to queue into (default `redis://127.0.0.1:6379`); ignored when `connection` is given. */
  redisUrl?: string
  /** An ioredis connection of your own; the plugin then leaves it open on close(). */
  connection?: Redis
  /** goalpost's GOALPOST_QUEUE_PREFIX (default `goalpost`). */
  queuePrefix?: string
  /**
   * Called for every call the plugin could not queue. analytics-node swallows
   * destination errors, so this hook and `stats` are the only place they show.
   */
  onError?: (error: GoalpostPluginError) => void
  /** Calls queued together as one job (default 100). */
  maxBatchSize?: number
  /** How long a call may wait for others to share its job (default 10 ms). */
  flushIntervalMs?: number
  /**
   * How long one batch may wait for Redis (to connect, then to take the job)
   * before its calls count as failed (default 5 s). Bounds every call, and so
   * analytics-node's `closeAndFlush()`, while Redis is away.
   */
  queueTimeoutMs?: number
}

export class GoalpostPluginError extends Error {
  constructor(
    message: string,
    readonly kind: 'invalid_message' | 'queue_failed',
    readonly messageIds: string[],
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'GoalpostPluginError'
  }
}

export interface GoalpostPluginStats {
  /** Calls handed to goalpost's queue. */
  queued: number
  /** Calls goalpost would not accept (the same checks as its HTTP API). */
  invalid: number
  /** Calls lost because Redis did not take them. */
  failed: number
}

export type GoalpostPlugin = Plugin & {
  readonly stats: GoalpostPluginStats
  /** Queues whatever is buffered now. */
  flush(): Promise<void>
  /**
   * Flushes, then closes the plugin's queue (and its Redis connection, if the
   * plugin opened it). Also what `analytics.deregister('goalpost')` does. Calls
   * after it count as failed.
   */
  close(): Promise<void>
}

/**
 * An `@segment/analytics-node` destination plugin: every call the app makes
 * is also queued to goalpost's ingest queue, in batches, with the call's own
 * moment as its processing time (R1).
 */
export function goalpostDestination(options: GoalpostDestinationOptions = {}): GoalpostPlugin {
  const maxBatchSize = options.maxBatchSize ?? 100
  const flushIntervalMs = options.flushIntervalMs ?? 10
  const queueTimeoutMs = options.queueTimeoutMs ?? 5_000
  const ownsConnection = !options.connection
  let connection: Redis | undefined = options.connection
  let queue: Queue<IngestJobData> | undefined
  let closed = false
  const stats: GoalpostPluginStats = { queued: 0, invalid: 0, failed: 0 }
  let buffer: IngestMessage[] = []
  let waiting: Array<() => void> = []
  let timer: NodeJS.Timeout | undefined
  const inFlight = new Set<Promise<void>>()

  const report = (error: GoalpostPluginError) => {
    try {
      options.onError?.(error)
    } catch {
      // A throwing hook must not break the app's analytics pipeline.
    }
  }

  const prefix = options.queuePrefix ?? 'goalpost'

  const getConnection = (): Redis => {
    if (!connection) {
      connection = new Redis(options.redisUrl ?? 'redis://127.0.0.1:6379', {
        // Shows in CLIENT LIST which goalpost the app's plugin feeds.
        connectionName: `goalpost-plugin:${prefix}`,
        // Fail fast rather than park commands while Redis is away: a call is
        // either queued within queueTimeoutMs or reported as failed, never
        // added minutes later behind the app's back.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
      })
      connection.on('error', () => {}) // reconnects by itself; failures surface per call
    }
    return connection
  }

  // The queue is built only on a ready connection: BullMQ waits for readiness
  // without a bound, and would hang every call while Redis is away.
  const getQueue = (): Queue<IngestJobData> => {
    if (!queue) {
      queue = new Queue<IngestJobData>(QUEUE_NAMES.ingest, {
        connection: getConnection(),
        prefix,
        defaultJobOptions: INGEST_JOB_OPTIONS,
        streams: EVENT_STREAM,
      })
      queue.on('error', () => {}) // connection errors, already reported per call
    }
    return queue
  }

  const send = async (messages: IngestMessage[]): Promise<void> => {
    if (closed) throw new Error('the plugin is closed')
    const deadline = Date.now() + queueTimeoutMs
    await whenReady(getConnection(), queueTimeoutMs)
    await withTimeout(getQueue().add('batch', { source: 'plugin', messages }), deadline - Date.now(), 'Redis did not take the job within the queue timeout')
  }

  const flush = (): Promise<void> => {
    clearTimeout(timer)
    timer = undefined
    if (buffer.length === 0) return Promise.all(inFlight).then(() => {})
    const messages = buffer
    const resolvers = waiting
    buffer = []
    waiting = []
    const sending = send(messages)
      .then(
        () => {
          stats.queued += messages.length
        },
        (cause: unknown) => {
          stats.failed += messages.length
          report(
            new GoalpostPluginError(
              `goalpost could not queue ${messages.length} call(s): ${(cause as Error)?.message ?? cause}`,
              'queue_failed',
              messages.map((m) => m.messageId),
              { cause },
            ),
          )
        },
      )
      .finally(() => {
        inFlight.delete(sending)
        for (const resolve of resolvers) resolve()
      })
    inFlight.add(sending)
    return Promise.all(inFlight).then(() => {})
  }

  const handle = (ctx: Context): Promise<Context> => {
    const receivedAt = new Date().toISOString()
    const messageIds = ctx.event.messageId ? [ctx.event.messageId] : []
    let input: unknown
    try {
      // A JSON round trip gives the same shape goalpost's HTTP API receives (Dates as ISO strings).
      input = JSON.parse(JSON.stringify(ctx.event))
    } catch (cause) {
      // A BigInt or a cycle: analytics-node would swallow the throw, so report it here.
      stats.invalid += 1
      report(new GoalpostPluginError(`the call is not JSON-serialisable: ${(cause as Error).message}`, 'invalid_message', messageIds, { cause }))
      return Promise.resolve(ctx)
    }
    const result = normaliseMessage(input, { receivedAt })
    if (!result.ok) {
      stats.invalid += 1
      report(new GoalpostPluginError(result.error.message, 'invalid_message', messageIds))
      return Promise.resolve(ctx)
    }
    buffer.push(result.message)
    const done = new Promise<Context>((resolve) => waiting.push(() => resolve(ctx)))
    if (buffer.length >= maxBatchSize) void flush()
    else timer ??= setTimeout(() => void flush(), flushIntervalMs)
    return done
  }

  let closing: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await flush()
      closed = true
      await queue?.close()
      if (ownsConnection && connection) {
        // QUIT lets Redis finish what it has; a connection that is not up is just dropped.
        if (connection.status === 'ready') await connection.quit().catch(() => connection?.disconnect())
        else connection.disconnect()
      }
    })())

  return {
    name: 'goalpost',
    type: 'destination',
    version: '0.1.0',
    isLoaded: () => true,
    load: async () => {
      if (!closed) getConnection() // connect while the app starts, not on its first call
    },
    // analytics.deregister('goalpost'): nothing reaches the plugin any more, so
    // it lets go of Redis too (an open socket would keep the app from exiting).
    unload: close,
    track: handle,
    identify: handle,
    page: handle,
    screen: handle,
    group: handle,
    alias: handle,
    stats,
    flush,
    close,
  }
}

/** Resolves once the connection is ready, or rejects (with Redis's last error) after `ms`. */
function whenReady(connection: Redis, ms: number): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve()
  if (connection.status === 'wait') void connection.connect().catch(() => {}) // lazyConnect: start it
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined
    const onError = (err: Error) => {
      lastError = err
    }
    const onReady = () => {
      cleanUp()
      resolve()
    }
    const timer = setTimeout(() => {
      cleanUp()
      reject(new Error(`Redis was not reachable within ${ms} ms${lastError ? ` (${lastError.message})` : ''}`))
    }, ms)
    const cleanUp = () => {
      clearTimeout(timer)
      connection.off('ready', onReady)
      connection.off('error', onError)
    }
    connection.on('ready', onReady)
    connection.on('error', onError)
  })
}
