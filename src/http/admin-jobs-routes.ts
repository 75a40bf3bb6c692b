import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import { listRuns, type JobKind, type JobRunRow, type JobTrigger } from '../db/job-runs.ts'
import { InputError } from '../errors.ts'
import { isAdminAuthorised } from './auth.ts'

/** Most runs one `GET /admin/jobs` lists. */
const MAX_LIMIT = 500
const TABLES = ['journeys', 'conversions', 'memberships', 'deliveries'] as const

const iso = (d: Date | null) => (d === null ? null : d.toISOString())

/** A job_runs row as the API shows it: counts grouped by table, a state in words. */
export function runBody(r: JobRunRow) {
  const counted = TABLES.some((t) => r[`${t}_added`] !== null && r[`${t}_added`] !== undefined)
  return {
    run_id: Number(r.run_id),
    kind: r.kind,
    scope: r.scope,
    dry_run: r.dry_run,
    trigger: r.trigger,
    schedule: r.schedule,
    job_id: r.job_id,
    state: r.finished_at === null ? 'running' : r.error === null ? 'completed' : 'failed',
    started_at: iso(r.started_at),
    finished_at: iso(r.finished_at),
    people: r.people,
    events_deleted: r.events_deleted === null ? null : Number(r.events_deleted),
    changes: counted
      ? Object.fromEntries(TABLES.map((t) => [t, { added: r[`${t}_added`], changed: r[`${t}_changed`], removed: r[`${t}_removed`] }]))
      : null,
    error: r.error,
  }
}

/**
 * `GET /admin/jobs?limit=&kind=recompute|retention&trigger=cli|api|schedule`
 * (admin token): the latest recompute and retention runs, newest first, as
 * job_runs records them (docs/sql-cookbook.md, "Job history").
 */
export async function adminJobsRoutes(app: FastifyInstance, deps: { db: Knex; adminToken: string }): Promise<void> {
  app.addHook('onRequest', async (request) => {
    if (!/^bearer /i.test(request.headers.authorization ?? ''))
      throw new InputError(401, 'missing_admin_token', 'send the admin token as "Authorization: Bearer <GOALPOST_ADMIN_TOKEN>"')
    if (!isAdminAuthorised(deps.adminToken, request)) throw new InputError(401, 'invalid_admin_token', 'the bearer token is not GOALPOST_ADMIN_TOKEN')
  })

  app.get('/admin/jobs', async (request) => {
    const query = request.query as { limit?: unknown; kind?: unknown; trigger?: unknown }
    let limit = 50
    if (query.limit !== undefined) {
      limit = typeof query.limit === 'string' && /^\d+$/.test(query.limit) ? Number(query.limit) : NaN
      if (!(limit >= 1 && limit <= MAX_LIMIT)) throw new InputError(400, 'invalid_filter', `query.limit: must be a whole number from 1 to ${MAX_LIMIT}`)
    }
    if (query.kind !== undefined && query.kind !== 'recompute' && query.kind !== 'retention')
      throw new InputError(400, 'invalid_filter', 'query.kind: must be recompute or retention')
    if (query.trigger !== undefined && !['cli', 'api', 'schedule'].includes(query.trigger as string))
      throw new InputError(400, 'invalid_filter', 'query.trigger: must be cli, api or schedule')
    const runs = await listRuns(deps.db, { limit, kind: query.kind as JobKind | undefined, trigger: query.trigger as JobTrigger | undefined })
    return { runs: runs.map(runBody) }
  })
}
