import { IngestRateLimiter, RateLimitedError } from './rate-limit.ts'
import { DependencyHealth, errorSummary } from '../dependency-health.ts'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import type { Queue } from 'bullmq'
import type { Knex } from 'knex'
import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { Logger } from '../logger.ts'
import { InputError, QueueUnavailableError } from '../errors.ts'
import { IngestProducer, type IngestJobData, type MaintenanceJobData } from '../jobs/queues.ts'
import { ConfigCache } from '../jobs/config-cache.ts'
import { registerEligibilityRoute } from './eligibility-route.ts'
import { adminRoutes } from './admin-routes.ts'
import { adminJobsRoutes } from './admin-jobs-routes.ts'
import { MAX_REQUEST_BYTES, registerJsonBody } from './body.ts'
import { registerHealthRoutes } from './health-routes.ts'
import { createHttpMetrics, registerMetricsRoute } from './metrics-route.ts'
import type { AcceptObserver } from './accept.ts'
import { registerReceivedAt } from './received-at.ts'
import { registerTrackingRoutes } from './tracking-routes.ts'
import { registerWebhookRoute } from './webhook-route.ts'
import { adminOutboxRoutes } from './admin-outbox-routes.ts'
import { registerOutboxMetrics } from '../outbox/metrics.ts'

export interface HttpDeps {
  config: Pick<Config, 'writeKeys' | 'webhookSecret' | 'adminToken'> & Partial<Pick<Config, 'rateLimit' | 'queuePrefix' | 'forwardWriteKey'>>
  queue: Queue<IngestJobData>
  db: Knex
  redis: Redis
  log: Logger
  /** Where admin recomputes are queued. */
  maintenance: Queue<MaintenanceJobData>
  /** The configuration in force (made here when not given). */
  configs?: ConfigCache
  /** Outage logging shared with the process's other parts (made here when not given). */
  health?: DependencyHealth
}

const errorBody = (code: string, message: string, details?: unknown) => ({
  error: details === undefined ? { code, message } : { code, message, details },
})

/** Fastify's own client errors, in the contract's error shape. */
function fromFastifyError(err: FastifyError): { status: number; code: string; message: string } | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'request_too_large', message: `request body is over ${MAX_REQUEST_BYTES} bytes` }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: 'invalid_json', message: 'request body is empty; send a JSON document' }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'unsupported_media_type', message: err.message }
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, code: 'invalid_content_length', message: err.message }
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
    return { status: err.statusCode, code: 'bad_request', message: err.message }
  return null
}

export async function buildServer(deps: HttpDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_REQUEST_BYTES,
    // Segment libraries retry on 5xx and connection errors; keep-alive helps batch senders.
    keepAliveTimeout: 65_000,
    return503OnClosing: true,
  })
  const configs = deps.configs ?? new ConfigCache(deps.db, undefined, { forward: Boolean(deps.config.forwardWriteKey) })
  const health = deps.health ?? new DependencyHealth(deps.log)
  registerReceivedAt(app)
  registerJsonBody(app)

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof RateLimitedError) reply.header('retry-after', String(err.retryAfterSeconds))
    if (err instanceof InputError) return reply.code(err.status).send(errorBody(err.code, err.message, err.details))
    if (err instanceof QueueUnavailableError) {
      // Logged once per Redis outage (the client retries), not once per request.
      if (!health.absorb(err.cause, 'redis')) request.log.warn({ cause: errorSummary(err.cause) }, 'queue unavailable; answering 503 so the client retries')
      return reply.code(503).header('retry-after', '5').send(errorBody('queue_unavailable', err.message))
    }
    const client = fromFastifyError(err)
    if (client) return reply.code(client.status).send(errorBody(client.code, client.message))
    // Postgres (or Redis) away: a transient 503 the client can retry, logged once per outage.
    if (health.absorb(err, 'postgres'))
      return reply.code(503).header('retry-after', '5').send(errorBody('unavailable', `a dependency is unreachable, retry later: ${errorSummary(err)}`))
    request.log.error({ err }, 'unexpected error')
    return reply.code(500).send(errorBody('internal_error', 'unexpected server error; it has been logged'))
  })
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(errorBody('not_found', `no route for ${request.method} ${request.url}`)),
  )

  const metrics = createHttpMetrics([deps.queue, deps.maintenance])
  const observe: AcceptObserver = (source, accepted, rejected) => {
    if (accepted > 0) metrics.accepted.inc({ source }, accepted)
    for (const r of rejected) metrics.rejected.inc({ source, code: r.error.code })
  }
  registerHealthRoutes(app, deps.db, deps.redis)
  registerOutboxMetrics(metrics.registry, deps.db)
  registerMetricsRoute(app, metrics)
  // Requests accepted at the same time share one job (group commit).
  const producer = new IngestProducer(deps.queue)
  const { rateLimit, queuePrefix = 'goalpost' } = deps.config
  const limiter = rateLimit ? new IngestRateLimiter(deps.redis, queuePrefix, rateLimit) : undefined
  registerTrackingRoutes(app, producer, deps.config.writeKeys, observe, limiter)
  registerWebhookRoute(app, producer, deps.config, observe)
  registerEligibilityRoute(app, { db: deps.db, configs, writeKeys: deps.config.writeKeys })
  await app.register(adminJobsRoutes, { db: deps.db, adminToken: deps.config.adminToken })
  await app.register(adminRoutes, {
    db: deps.db,
    adminToken: deps.config.adminToken,
    maintenance: deps.maintenance,
    ingest: producer,
    // Eligibility answers from the saved configuration at once, not up to a second later.
    onConfigSaved: () => configs.invalidate(),
  })
  await app.register(adminOutboxRoutes, { db: deps.db, adminToken: deps.config.adminToken })
  return app
}
