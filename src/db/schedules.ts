import type { Knex } from 'knex'
import type { ScheduleDef } from '../core/config-document/index.ts'
import type { ScheduleDefinition } from './config.ts'

/**
 * The saved schedules and the configuration revision they belong to (with
 * when it was applied, 0 before any), read in one snapshot.
 */
export async function loadSchedules(db: Knex): Promise<{ revision: number; appliedAt: number; schedules: ScheduleDef[] }> {
  return db.transaction(
    async (trx) => {
      const latest = await trx('config_revisions').orderBy('revision', 'desc').first('revision', 'applied_at')
      const rows = await trx<{ name: string; definition: ScheduleDefinition }>('schedules').orderBy('name').select('name', 'definition')
      return {
        revision: Number(latest?.revision ?? 0),
        appliedAt: latest ? (latest.applied_at as Date).getTime() : 0,
        schedules: rows.map((r) => ({ name: r.name, ...r.definition }) as ScheduleDef),
      }
    },
    { isolationLevel: 'repeatable read', readOnly: true },
  )
}
