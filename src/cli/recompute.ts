import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import { loadConfig } from '../config.ts'
import { createDb } from '../db/knex.ts'
import { migrateToLatest } from '../db/migrate.ts'
import type { WriteSummary } from '../db/evaluation.ts'
import { ConfigCache } from '../jobs/config-cache.ts'
import { recompute, UnknownCampaignError } from '../jobs/recompute.ts'

export function formatSummary(changes: WriteSummary): string {
  return (Object.entries(changes) as [string, WriteSummary[keyof WriteSummary]][])
    .map(([table, c]) => `  ${table.padEnd(12)} +${c.added} added  ~${c.changed} changed  -${c.removed} removed`)
    .join('\n')
}

/** `goalpost recompute [--campaign KEY] [--dry-run]` */
export async function recomputeCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { campaign: { type: 'string' }, 'dry-run': { type: 'boolean', default: false } },
  })
  const config = loadConfig()
  await migrateToLatest(config.databaseUrl)
  const db = createDb(config.databaseUrl, { poolMax: 4, applicationName: 'goalpost-recompute' })
  const bar = new cliProgress.SingleBar(
    { format: 'recompute |{bar}| {value}/{total} people', stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  )
  try {
    const ctx = await new ConfigCache(db).get()
    let started = false
    const result = await recompute(db, ctx, {
      campaign: values.campaign,
      dryRun: values['dry-run'],
      now: Date.now(),
      onProgress: (done, total) => {
        if (!started) bar.start(total, 0)
        started = true
        bar.update(done)
      },
    })
    bar.stop()
    console.log(`${values['dry-run'] ? 'dry run: would change' : 'recomputed'} ${result.people} people${values.campaign ? ` for campaign ${values.campaign}` : ''}:`)
    console.log(formatSummary(result.changes))
    return 0
  } catch (err) {
    bar.stop()
    if (err instanceof UnknownCampaignError) {
      console.error(err.message)
      return 1
    }
    throw err
  } finally {
    await db.destroy()
  }
}
