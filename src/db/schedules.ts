import type { Knex } from 'knex'
import type { ScheduleDef } from '../core/config-document/index.ts'
import type { ScheduleDefinition } from './config.ts'

/** The saved schedules and the configuration revision they belong to, read in one snapshot. */
export async function loadSchedules(db: Knex): Promise<{ revision: number; schedules: ScheduleDef[] }> {
  return db.transaction(
    async (trx) => {
      const [latest] = await trx('config_revisions').max({ revision: 'revision' })
      const rows = await trx<{ name: string; definition: ScheduleDefinition }>('schedules').orderBy('name').select('name', 'definition')
      return { revision: Number(latest?.revision ?? 0), schedules: rows.map((r) => ({ name: r.name, ...r.definition }) as ScheduleDef) }
    },
    { isolationLevel: 'repeatable read', readOnly: true },
  )
}
