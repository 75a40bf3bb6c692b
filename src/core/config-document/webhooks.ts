/**
 * `webhooks`: reporting webhooks (docs/outbound.md). Each names a URL, the
 * changes it wants (conversions recorded and revoked, journeys entered and
 * exited), optionally the campaigns it wants them for, and the environment
 * variable holding its signing secret. The secret itself is never in the
 * document: the document is stored and shown (`GET /admin/config`), the
 * environment of the workers is not.
 */
import { z } from 'zod'
import { describe, fail, isMapping, key, oneOf, rawList, strict, type Problem } from './shared.ts'

export const OUTBOUND_CHANGES = ['conversion_recorded', 'conversion_revoked', 'journey_entered', 'journey_exited'] as const
export type OutboundChange = (typeof OUTBOUND_CHANGES)[number]

export interface WebhookDef {
  name: string
  url: string
  events: OutboundChange[]
  /** Only these campaigns' changes; absent: every campaign's. */
  campaigns?: string[]
  /** The environment variable holding the HMAC secret, read by the process that sends. */
  secretEnv: string
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/

const webhookUrl = z.unknown().transform((value, ctx) => {
  let url: URL
  try {
    if (typeof value !== 'string') throw new Error()
    url = new URL(value.trim())
  } catch {
    return fail(ctx, `must be an http:// or https:// URL, got ${describe(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail(ctx, `must be an http:// or https:// URL, got ${url.protocol}//…`)
  if (url.username || url.password) return fail(ctx, 'must not carry credentials; receivers check the signature instead')
  return url.toString()
})

const events = z
  .array(oneOf(OUTBOUND_CHANGES, 'change'))
  .min(1, `must list at least one of ${OUTBOUND_CHANGES.join(', ')}`)
  .transform((list) => [...new Set(list)])

export const webhookSchema = strict({
  name: key,
  url: webhookUrl,
  events,
  campaigns: z.array(key).min(1, 'must list at least one campaign key (leave it out for every campaign)').optional(),
  secret_env: z
    .string()
    .regex(ENV_NAME, 'must be the name of an environment variable (letters, digits and _), e.g. GOALPOST_WEBHOOK_CRM_SECRET'),
}).transform(
  (w): WebhookDef => ({
    name: w.name,
    url: w.url,
    events: w.events,
    ...(w.campaigns ? { campaigns: [...new Set(w.campaigns)] } : {}),
    secretEnv: w.secret_env,
  }),
)

/** Each name once: a second webhook with it is a problem at its `name`. */
export function duplicateWebhookNames(doc: Record<string, unknown>): Problem[] {
  const first = new Map<string, number>()
  const problems: Problem[] = []
  rawList(doc, 'webhooks').forEach((w, i) => {
    if (!isMapping(w) || typeof w.name !== 'string') return
    const seen = first.get(w.name)
    if (seen === undefined) first.set(w.name, i)
    else problems.push({ path: ['webhooks', i, 'name'], message: `duplicate name ${JSON.stringify(w.name)} (also webhooks[${seen}])` })
  })
  return problems
}
