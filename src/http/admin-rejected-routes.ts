import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import { listRejected, type RejectedFilter } from '../db/rejected.ts'
import { InputError } from '../errors.ts'
import type { IngestProducer } from '../jobs/queues.ts'
import { parseSince, rejectedJson, replayRejected } from '../jobs/replay-rejected.ts'
import { isStorableText, UNSTORABLE_TEXT } from '../core/storable.ts'

/** Most dead letters one `GET /admin/rejected` lists. */
const MAX_LIMIT = 1_000

function filterFrom(where: string, input: { reason?: unknown; since?: unknown }, now: number): RejectedFilter {
  const filter: RejectedFilter = {}
  if (input.reason !== undefined) {
    if (typeof input.reason !== 'string' || input.reason === '') throw new InputError(400, 'invalid_filter', `${where}reason: must be the text to look for in the reasons`)
    if (!isStorableText(input.reason)) throw new InputError(400, 'invalid_filter', `${where}reason: ${UNSTORABLE_TEXT}`)
    filter.reason = input.reason
  }
  if (input.since !== undefined) {
    const since = typeof input.since === 'string' ? parseSince(input.since, now) : null
    if (since === null)
      throw new InputError(400, 'invalid_filter', `${where}since: must be an ISO 8601 date-time (2026-12-01T00:00:00Z) or a duration ago (30m, 24h, 7d)`)
    filter.since = since
  }
  return filter
}

/**
 * Dead letters (messages Postgres refused for good), as `goalpost rejected`:
 * `GET /admin/rejected?reason=&since=&all=&limit=` lists them,
 * `POST /admin/rejected/replay {reason?, since?, dry_run?}` queues them again
 * through the normal path (src/jobs/replay-rejected.ts). Registered inside
 * the admin context, behind its token check.
 */
export function registerRejectedRoutes(app: FastifyInstance, deps: { db: Knex; ingest: IngestProducer }) {
  app.get('/admin/rejected', async (request) => {
    const query = request.query as { reason?: unknown; since?: unknown; all?: unknown; limit?: unknown }
    const filter = filterFrom('query.', query, Date.now())
    if (query.all !== undefined && query.all !== 'true' && query.all !== 'false') throw new InputError(400, 'invalid_filter', 'query.all: must be true or false')
    filter.includeReplayed = query.all === 'true'
    let limit = 100
    if (query.limit !== undefined) {
      limit = typeof query.limit === 'string' && /^\d+$/.test(query.limit) ? Number(query.limit) : NaN
      if (!(limit >= 1 && limit <= MAX_LIMIT)) throw new InputError(400, 'invalid_filter', `query.limit: must be a whole number from 1 to ${MAX_LIMIT}`)
    }
    const { total, rows } = await listRejected(deps.db, filter, limit)
    return { total, messages: rows.map(rejectedJson) }
  })

  app.post('/admin/rejected/replay', async (request) => {
    const body = (request.body ?? {}) as { reason?: unknown; since?: unknown; dry_run?: unknown }
    if (typeof body !== 'object' || Array.isArray(body)) throw new InputError(400, 'invalid_body', 'the body must be a JSON object: {reason?, since?, dry_run?}')
    if (body.dry_run !== undefined && typeof body.dry_run !== 'boolean') throw new InputError(400, 'invalid_body', 'dry_run: must be true or false')
    const filter = filterFrom('', body, Date.now())
    const summary = await replayRejected(deps.db, deps.ingest, filter, { dryRun: body.dry_run === true })
    if (!summary.dry_run && summary.matched > 0) request.log.info({ ...summary, invalid: undefined }, 'rejected messages replayed')
    return summary
  })
}
