import type { Context, Plugin } from '@segment/analytics-node'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { INGEST_JOB_OPTIONS, QUEUE_NAMES, type IngestJobData } from '../jobs/queues.ts'
import { normaliseMessage, type IngestMessage } from './normalise.ts'

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
  /** Flushes, then closes the plugin's queue (and its Redis connection, if the plugin opened it). */
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
  const ownsConnection = !options.connection
  let connection: Redis | undefined = options.connection
  let queue: Queue<IngestJobData> | undefined
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

  const getQueue = () => {
    if (!queue) {
      connection ??= new Redis(options.redisUrl ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 3 })
      connection.on('error', () => {}) // reconnects by itself; failures surface per call
      queue = new Queue<IngestJobData>(QUEUE_NAMES.ingest, {
        connection,
        prefix: options.queuePrefix ?? 'goalpost',
        defaultJobOptions: INGEST_JOB_OPTIONS,
      })
    }
    return queue
  }

  const flush = (): Promise<void> => {
    clearTimeout(timer)
    timer = undefined
    if (buffer.length === 0) return Promise.all(inFlight).then(() => {})
    const messages = buffer
    const resolvers = waiting
    buffer = []
    waiting = []
    const sending = getQueue()
      .add('batch', { source: 'plugin', messages })
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
    // A JSON round trip gives the same shape goalpost's HTTP API receives (Dates as ISO strings).
    const result = normaliseMessage(JSON.parse(JSON.stringify(ctx.event)), { receivedAt })
    if (!result.ok) {
      stats.invalid += 1
      report(new GoalpostPluginError(result.error.message, 'invalid_message', ctx.event.messageId ? [ctx.event.messageId] : []))
      return Promise.resolve(ctx)
    }
    buffer.push(result.message)
    const done = new Promise<Context>((resolve) => waiting.push(() => resolve(ctx)))
    if (buffer.length >= maxBatchSize) void flush()
    else timer ??= setTimeout(() => void flush(), flushIntervalMs)
    return done
  }

  return {
    name: 'goalpost',
    type: 'destination',
    version: '0.1.0',
    isLoaded: () => true,
    load: async () => {},
    unload: async () => {
      await flush()
    },
    track: handle,
    identify: handle,
    page: handle,
    screen: handle,
    group: handle,
    alias: handle,
    stats,
    flush,
    async close() {
      await flush()
      if (queue) await queue.close()
      if (ownsConnection) connection?.disconnect()
    },
  }
}
