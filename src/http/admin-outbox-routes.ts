import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import { InputError } from '../errors.ts'
import { listOutbox, outboxStatus, retryRefused } from '../outbox/store.ts'
import { isAdminAuthorised } from './auth.ts'

/** Most rows one `GET /admin/outbox` lists. */
const MAX_LIMIT = 1_000
const DESTINATION = /^(segment|webhook:[a-z0-9_-]{1,64})$/

function destinationFrom(where: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !DESTINATION.test(value))
    throw new InputError(400, 'invalid_filter', `${where}destination: must be "segment" or "webhook:<name>"`)
  return value
}

/**
 * The outbox for operators (docs/outbound.md), behind the admin token:
 * `GET /admin/outbox?status=failed|pending&destination=&limit=` lists changes
 * refused for good (default) or still waiting, with their reasons, and the
 * per-destination totals; `POST /admin/outbox/retry {ids?, destination?}`
 * makes refused ones due again (sent within seconds, same ids).
 */
export async function adminOutboxRoutes(app: FastifyInstance, deps: { db: Knex; adminToken: string }): Promise<void> {
  app.addHook('onRequest', async (request) => {
    if (!/^bearer /i.test(request.headers.authorization ?? ''))
      throw new InputError(401, 'missing_admin_token', 'send the admin token as "Authorization: Bearer <GOALPOST_ADMIN_TOKEN>"')
    if (!isAdminAuthorised(deps.adminToken, request)) throw new InputError(401, 'invalid_admin_token', 'the bearer token is not GOALPOST_ADMIN_TOKEN')
  })

  app.get('/admin/outbox', async (request) => {
    const query = request.query as { status?: unknown; destination?: unknown; limit?: unknown }
    if (query.status !== undefined && query.status !== 'failed' && query.status !== 'pending')
      throw new InputError(400, 'invalid_filter', 'query.status: must be failed (refused for good, the default) or pending')
    let limit = 100
    if (query.limit !== undefined) {
      limit = typeof query.limit === 'string' && /^\d+$/.test(query.limit) ? Number(query.limit) : NaN
      if (!(limit >= 1 && limit <= MAX_LIMIT)) throw new InputError(400, 'invalid_filter', `query.limit: must be a whole number from 1 to ${MAX_LIMIT}`)
    }
    const status = query.status === 'pending' ? 'pending' : 'failed'
    const [rows, totals] = [await listOutbox(deps.db, { status, destination: destinationFrom('query.', query.destination), limit }), await outboxStatus(deps.db)]
    return { status, changes: rows, destinations: totals }
  })

  app.post('/admin/outbox/retry', async (request) => {
    const body = (request.body ?? {}) as { ids?: unknown; destination?: unknown }
    if (typeof body !== 'object' || Array.isArray(body)) throw new InputError(400, 'invalid_body', 'the body must be a JSON object: {ids?, destination?}')
    let ids: string[] | undefined
    if (body.ids !== undefined) {
      const valid = Array.isArray(body.ids) && body.ids.length > 0 && body.ids.every((id) => (typeof id === 'string' || typeof id === 'number') && /^\d{1,18}$/.test(String(id)))
      if (!valid) throw new InputError(400, 'invalid_body', 'ids: must be a non-empty list of outbox ids (the "id" of GET /admin/outbox)')
      ids = (body.ids as unknown[]).map(String)
    }
    const retried = await retryRefused(deps.db, { ids, destination: destinationFrom('', body.destination) })
    return { retried }
  })
}
