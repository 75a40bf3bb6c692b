import type { Knex } from 'knex'
import { unnestRows } from './unnest.ts'
import { stageRows } from './copy.ts'
import { columnsSetBy, type Channel, type DeliveryFact, type StepColumn } from '../core/lifecycle.ts'

export interface DeliveryObservation {
  fact: DeliveryFact
  personId: string
  receivedAt: string
  seq: number
}

type DeliveryRow = {
  delivery_id: string
  person_id: string
  campaign_ref: string | null
  journey_ref: string | null
  action_id: string | null
  channel: Channel
  first_received_at: string
} & Partial<Record<StepColumn, string>>

const STEP_COLUMNS: readonly StepColumn[] = [
  'drafted_at',
  'attempted_at',
  'sent_at',
  'delivered_at',
  'opened_at',
  'clicked_at',
  'failed_at',
]

/**
 * Folds lifecycle events into `deliveries` (R4, R5, R7). Each step keeps the
 * earliest processing time recorded for it (LEAST), which makes the result
 * independent of arrival order; ids keep the first value named. Returns the
 * deliveries that had no row before (incremental evaluation needs to know an
 * input about a delivery it has forgotten from one about a new delivery).
 */
export async function upsertDeliveries(
  trx: Knex.Transaction,
  observations: readonly DeliveryObservation[],
  opts: { bulk?: boolean } = {},
): Promise<Set<string>> {
  const created = new Set<string>()
  if (observations.length === 0) return created
  // ON CONFLICT may touch a row once per statement: fold the batch per delivery first.
  const rows = new Map<string, DeliveryRow>()
  // Each time parsed once, not in every comparison (an import batch has ~15,000 observations).
  const sorted = observations
    .map((o) => ({ o, at: Date.parse(o.receivedAt) }))
    .sort((a, b) => a.at - b.at || a.o.seq - b.o.seq)
  for (const { o: { fact, personId, receivedAt } } of sorted) {
    let row = rows.get(fact.deliveryId)
    if (!row) {
      row = {
        delivery_id: fact.deliveryId,
        person_id: personId,
        campaign_ref: null,
        journey_ref: null,
        action_id: null,
        channel: fact.channel,
        first_received_at: receivedAt,
      }
      rows.set(fact.deliveryId, row)
    }
    row.campaign_ref ??= fact.campaignRef
    row.journey_ref ??= fact.journeyRef
    row.action_id ??= fact.actionId
    for (const column of columnsSetBy(fact.step)) row[column] ??= receivedAt // sorted: the first is the earliest
  }
  const least = STEP_COLUMNS.map((c) => `${c} = LEAST(deliveries.${c}, excluded.${c})`).join(',\n ')
  const columns = ['delivery_id', 'person_id', 'campaign_ref', 'journey_ref', 'action_id', 'channel', ...STEP_COLUMNS, 'first_received_at']
  const types = Object.fromEntries(columns.map((c) => [c, c.endsWith('_at') ? 'timestamptz' : 'text']))
  // bulk (import): the rows reach Postgres by COPY into a staging table emptied at commit.
  const [from, bindings] = opts.bulk
    ? await stageRows(trx, 'goalpost_staged_deliveries', 'r', columns, types, rows.values())
    : unnestRows('r', columns, types, [...rows.values()])
  // xmax = 0: the row was inserted by this statement, not updated (no row before).
  const { rows: written } = await trx.raw<{ rows: { delivery_id: string; created: boolean }[] }>(
    `INSERT INTO deliveries (${columns.join(', ')})
     SELECT ${columns.join(', ')} FROM ${from}
      ORDER BY delivery_id
     ON CONFLICT (delivery_id) DO UPDATE SET
       campaign_ref = coalesce(deliveries.campaign_ref, excluded.campaign_ref),
       journey_ref = coalesce(deliveries.journey_ref, excluded.journey_ref),
       action_id = coalesce(deliveries.action_id, excluded.action_id),
       ${least},
       first_received_at = LEAST(deliveries.first_received_at, excluded.first_received_at),
       updated_at = now()
     RETURNING delivery_id, (xmax = 0) AS created`,
    bindings,
  )
  for (const r of written) if (r.created) created.add(r.delivery_id)
  return created
}
