import type { Knex } from 'knex'
import { canonicalJson } from '../core/config-document/document.ts'
import type { WebhookDef } from '../core/config-document/webhooks.ts'

/**
 * The `webhooks` section in Postgres, saved declaratively with the rest of
 * the document (db/config.ts): a webhook the document leaves out is archived,
 * so the outbox rows still waiting for it are kept and reported, not sent.
 */

interface WebhookRow {
  name: string
  definition: Omit<WebhookDef, 'name'>
  archived_at: Date | null
}

export interface WebhookPlan {
  changes: string[]
  writes: Array<(revision: number) => Promise<unknown>>
}

/** What saving `wanted` changes, and the writes that do it (run once the revision exists). */
export async function planWebhooks(trx: Knex.Transaction, wanted: readonly WebhookDef[], stamp: string): Promise<WebhookPlan> {
  const rows = await trx<WebhookRow>('config_webhooks').select('name', 'definition', 'archived_at')
  const existing = new Map(rows.map((r) => [r.name, r]))
  const plan: WebhookPlan = { changes: [], writes: [] }
  for (const hook of wanted) {
    const { name, ...definition } = hook
    const json = canonicalJson(definition)
    const row = existing.get(name)
    if (row && row.archived_at === null && canonicalJson(row.definition) === json) continue
    plan.changes.push(`webhook ${name}: ${!row ? 'added' : row.archived_at !== null ? 'restored' : 'updated'}`)
    plan.writes.push((revision) =>
      trx('config_webhooks')
        .insert({ name, definition: json, revision, archived_at: null, created_at: stamp, updated_at: stamp })
        .onConflict('name')
        .merge(['definition', 'revision', 'archived_at', 'updated_at']),
    )
  }
  const named = new Set(wanted.map((w) => w.name))
  for (const row of rows)
    if (row.archived_at === null && !named.has(row.name)) {
      plan.changes.push(`webhook ${row.name}: archived`)
      plan.writes.push((revision) => trx('config_webhooks').where({ name: row.name }).update({ archived_at: stamp, updated_at: stamp, revision }))
    }
  return plan
}

/** The webhooks in force (not archived), by name. */
export async function loadWebhooks(db: Knex): Promise<WebhookDef[]> {
  const rows = await db<WebhookRow>('config_webhooks').whereNull('archived_at').orderBy('name').select('name', 'definition')
  return rows.map((r) => ({ name: r.name, ...r.definition }))
}
