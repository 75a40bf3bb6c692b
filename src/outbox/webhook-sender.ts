import type { WebhookDef } from '../core/config-document/webhooks.ts'
import { SIGNATURE_HEADER, WEBHOOK_ID_HEADER, signWebhook } from './signature.ts'
import { messageIdOf, type Outcome, type OutboxRow } from './store.ts'
import { WEBHOOK_PREFIX } from './routing.ts'

/**
 * Reporting webhooks (docs/outbound.md): one signed JSON POST per change.
 * 2xx is delivered; 408, 429, 5xx, network errors and timeouts are tried
 * again after a backoff (same id, fresh timestamp and signature); any other
 * answer is a refusal the receiver would repeat, kept with its reason.
 */

/** The body a receiver gets. */
export function webhookBody(row: OutboxRow, webhook: string) {
  return {
    id: messageIdOf(row),
    type: row.change,
    webhook,
    /** Increasing in the order goalpost recorded the changes (retries may reorder arrivals). */
    sequence: Number(row.id),
    created_at: row.created_at.toISOString(),
    data: row.payload,
  }
}

export interface WebhookSendOptions {
  /** Deadline of the whole send. */
  timeoutMs: number
  /** Where `secret_env` names are looked up (the worker's environment). */
  env: NodeJS.ProcessEnv
  /** Unix seconds of the attempt. */
  nowSeconds: () => number
  /** Requests at once. */
  concurrency?: number
}

async function sendOne(row: OutboxRow, hook: WebhookDef | undefined, opts: WebhookSendOptions, signal: AbortSignal): Promise<Outcome> {
  const name = row.destination.slice(WEBHOOK_PREFIX.length)
  if (!hook) return { kind: 'refused', error: `webhook ${name} is no longer in the configuration; restore it, then retry by hand (POST /admin/outbox/retry)` }
  const secret = opts.env[hook.secretEnv]
  if (!secret) return { kind: 'retry', error: `environment variable ${hook.secretEnv} (webhook ${name}'s secret_env) is not set in this worker`, delayMs: -1 }
  const body = JSON.stringify(webhookBody(row, name))
  try {
    const res = await fetch(hook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'goalpost-webhooks',
        [WEBHOOK_ID_HEADER]: messageIdOf(row),
        [SIGNATURE_HEADER]: signWebhook(secret, opts.nowSeconds(), body),
      },
      body,
      signal,
    })
    await res.arrayBuffer().catch(() => undefined)
    if (res.ok) return { kind: 'sent' }
    const error = `${hook.url} answered ${res.status} ${res.statusText}`.trim()
    if (res.status === 408 || res.status === 429 || res.status >= 500) return { kind: 'retry', error, delayMs: -1 }
    return { kind: 'refused', error }
  } catch (err) {
    const reason = signal.aborted ? `no answer within ${opts.timeoutMs} ms` : (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message
    return { kind: 'retry', error: `${hook.url}: ${reason}`, delayMs: -1 }
  }
}

/** Outcomes by row id; `delayMs: -1`: the caller's backoff. */
export async function sendWebhooks(rows: readonly OutboxRow[], hooks: readonly WebhookDef[], opts: WebhookSendOptions): Promise<Map<string, Outcome>> {
  const byName = new Map(hooks.map((h) => [h.name, h]))
  const signal = AbortSignal.timeout(opts.timeoutMs)
  const outcomes = new Map<string, Outcome>()
  let next = 0
  const lane = async () => {
    while (next < rows.length) {
      const row = rows[next++]
      outcomes.set(row.id, await sendOne(row, byName.get(row.destination.slice(WEBHOOK_PREFIX.length)), opts, signal))
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 8, rows.length) }, lane))
  return outcomes
}
