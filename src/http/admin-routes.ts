import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import YAML from 'yaml'
import { validateConfigDocument } from '../core/config-document/index.ts'
import { applyConfig, getConfigDocument, type ApplyResult } from '../db/config.ts'
import { InputError } from '../errors.ts'
import { isAdminAuthorised } from './auth.ts'
import type { Queue } from 'bullmq'
import type { IngestProducer, MaintenanceJobData } from '../jobs/queues.ts'
import { MAX_REQUEST_BYTES, decode } from './body.ts'
import { enqueueMaintenance } from '../jobs/queues.ts'
import { isStorableText, UNSTORABLE_TEXT } from '../core/storable.ts'
import { registerRejectedRoutes } from './admin-rejected-routes.ts'

export interface AdminDeps {
  db: Knex
  adminToken: string
  /** Where `POST /admin/recompute` queues its job. */
  maintenance: Queue<MaintenanceJobData>
  /** Where `POST /admin/rejected/replay` queues dead letters again (the tracking routes' producer). */
  ingest: IngestProducer
  /** The apply's time (R13: goal versions start then); tests may pin it. */
  now?: () => Date
  /** Told after a save, so this process's cached configuration (eligibility) is reloaded at once. */
  onConfigSaved?: () => void
}

/** Content types read as YAML; every other body is JSON (body.ts). */
export const YAML_CONTENT_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml']

function parseYaml(text: string): unknown {
  try {
    // A document of comments only is YAML null: the empty document.
    return YAML.parse(text) ?? {}
  } catch (err) {
    throw new InputError(400, 'invalid_yaml', `request body is not valid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
}

export function applyResultBody(result: ApplyResult) {
  return {
    revision: result.revision,
    changed: result.changed,
    changes: result.changes,
    goal_versions: result.goalVersions.map((v) => ({
      campaign: v.campaign,
      version: v.version,
      effective_from: v.effectiveFrom,
      goal_removed: v.goal === null,
      ...(v.touched ? { touched: v.touched } : {}),
    })),
  }
}

const wantsYaml = (request: FastifyRequest) => /\b(application|text)\/(x-)?yaml\b/i.test(String(request.headers.accept ?? ''))

/**
 * `GET`/`PUT /admin/config` (CONTRACT.md): the whole configuration document,
 * JSON or YAML, with the declarative meaning of `goalpost apply`; recomputes,
 * their jobs, and dead letters (admin-rejected-routes.ts). Registered
 * as its own Fastify context, so the YAML parser and the admin check apply to
 * these routes only.
 */
export async function adminRoutes(app: FastifyInstance, deps: AdminDeps): Promise<void> {
  const now = deps.now ?? (() => new Date())

  app.addContentTypeParser(YAML_CONTENT_TYPES, { parseAs: 'buffer', bodyLimit: MAX_REQUEST_BYTES }, async (request: FastifyRequest, payload: Buffer) => {
    const text = (await decode(request, payload)).toString('utf8')
    if (text.trim() === '')
      throw new InputError(400, 'invalid_yaml', 'request body is empty; send the whole config document ({} configures nothing)')
    return parseYaml(text)
  })

  // onRequest: a request without the token is refused before its body is read.
  app.addHook('onRequest', async (request) => {
    if (!/^bearer /i.test(request.headers.authorization ?? ''))
      throw new InputError(401, 'missing_admin_token', 'send the admin token as "Authorization: Bearer <GOALPOST_ADMIN_TOKEN>"')
    if (!isAdminAuthorised(deps.adminToken, request))
      throw new InputError(401, 'invalid_admin_token', 'the bearer token is not GOALPOST_ADMIN_TOKEN')
  })

  app.get('/admin/config', async (request, reply: FastifyReply) => {
    const stored = await getConfigDocument(deps.db)
    const document = stored?.document ?? {}
    reply.header('goalpost-config-revision', String(stored?.revision ?? 0))
    if (wantsYaml(request)) return reply.type('application/yaml').send(YAML.stringify(document))
    return reply.send(document)
  })

  app.put('/admin/config', async (request, reply) => {
    const validated = validateConfigDocument(request.body)
    if (!validated.ok)
      throw new InputError(
        422,
        'invalid_config',
        `the configuration document has ${validated.errors.length} error${validated.errors.length === 1 ? '' : 's'}; nothing was saved`,
        { errors: validated.errors },
      )
    const result = await applyConfig(deps.db, validated.document, { now: now(), source: 'http', raw: request.body })
    if (result.changed) {
      deps.onConfigSaved?.()
      request.log.info({ revision: result.revision, changes: result.changes }, 'configuration applied')
    }
    return reply.send(applyResultBody(result))
  })

  // R3: rebuild from the log as a job any worker runs; progress is the job's.
  app.post('/admin/recompute', async (request, reply) => {
    const body = (request.body ?? {}) as { campaign?: unknown; dry_run?: unknown }
    if (typeof body !== 'object' || Array.isArray(body)) throw new InputError(400, 'invalid_body', 'the body must be a JSON object: {campaign?, dry_run?}')
    if (body.campaign !== undefined && (typeof body.campaign !== 'string' || body.campaign === ''))
      throw new InputError(400, 'invalid_body', 'campaign: must be a campaign key')
    if (typeof body.campaign === 'string' && !isStorableText(body.campaign)) throw new InputError(400, 'invalid_body', `campaign: ${UNSTORABLE_TEXT}`)
    if (body.campaign !== undefined && !(await deps.db('campaigns').where({ key: body.campaign }).whereNull('archived_at').first('key')))
      throw new InputError(404, 'unknown_campaign', `campaign: no active campaign "${body.campaign}"; check the key with GET /admin/config`)
    if (body.dry_run !== undefined && typeof body.dry_run !== 'boolean') throw new InputError(400, 'invalid_body', 'dry_run: must be true or false')
    const job = await enqueueMaintenance(deps.maintenance, { kind: 'recompute', campaign: body.campaign as string | undefined, dryRun: body.dry_run as boolean | undefined })
    return reply.code(202).send({ job_id: job })
  })

  registerRejectedRoutes(app, { db: deps.db, ingest: deps.ingest })

  app.get('/admin/jobs/:id', async (request) => {
    const { id } = request.params as { id: string }
    // State first, then the job: read the other way round, a job finishing in
    // between would show as completed without its result.
    const state = await deps.maintenance.getJobState(id)
    const job = await deps.maintenance.getJob(id)
    if (!job || state === 'unknown') throw new InputError(404, 'unknown_job', `no maintenance job "${id}" (finished jobs are kept for the last 100)`)
    return {
      job_id: job.id,
      kind: job.data.kind,
      state,
      progress: job.progress,
      result: job.returnvalue ?? null,
      error: job.failedReason ?? null,
    }
  })
}
