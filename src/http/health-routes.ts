import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import type { Redis } from 'ioredis'
import { withTimeout } from '../timeout.ts'

async function check(name: string, probe: () => Promise<unknown>, timeoutMs = 2_000) {
  try {
    await withTimeout(probe(), timeoutMs, `no answer within ${timeoutMs} ms`)
    return { name, ok: true as const }
  } catch (err) {
    return { name, ok: false as const, error: (err as Error).message }
  }
}

/** Liveness (the process answers) and readiness (Postgres and Redis reachable). */
export function registerHealthRoutes(app: FastifyInstance, db: Knex, redis: Redis) {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const checks = await Promise.all([check('postgres', () => db.raw('SELECT 1')), check('redis', () => redis.ping())])
    const ready = checks.every((c) => c.ok)
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', checks })
  })
}
