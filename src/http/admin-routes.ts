import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import YAML from 'yaml'
import { validateConfigDocument } from '../core/config-document.ts'
import { applyConfig, getConfigDocument, type ApplyResult } from '../db/config.ts'
import { InputError } from '../errors.ts'
import { isAdminAuthorised } from './auth.ts'
import { MAX_REQUEST_BYTES, decode } from './body.ts'

export interface AdminDeps {
  db: Knex
  adminToken: string
  /** The apply's time (R13: goal versions start then); tests may pin it. */
  now?: () => Date
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
 * JSON or YAML, with the declarative meaning of `goalpost apply`. Registered
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
    if (result.changed) request.log.info({ revision: result.revision, changes: result.changes }, 'configuration applied')
    return reply.send(applyResultBody(result))
  })
}
