import cliProgress from 'cli-progress'
import type { Config } from '../config.ts'
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

/** `goalpost recompute [--campaign KEY] [--dry-run] [--json]`; exit 1 for a campaign that is not configured. */
export async function recomputeCommand(config: Config, opts: { campaign?: string; dryRun?: boolean; json?: boolean }): Promise<number> {
  const dryRun = opts.dryRun ?? false
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
      campaign: opts.campaign,
      dryRun,
      now: Date.now(),
      trigger: 'cli',
      onProgress: (done, total) => {
        if (!started) bar.start(total, 0)
        started = true
        bar.update(done)
      },
    })
    bar.stop()
    if (opts.json) {
      console.log(JSON.stringify({ dry_run: dryRun, campaign: opts.campaign ?? null, people: result.people, changes: result.changes, ...(result.kept ? { kept: result.kept } : {}) }))
      return 0
    }
    console.log(`${dryRun ? 'dry run: would change' : 'recomputed'} ${result.people} people${opts.campaign ? ` for campaign ${opts.campaign}` : ''}:`)
    console.log(formatSummary(result.changes))
    if (result.kept) console.log(`left as they are: ${result.kept} people whose log retention shortened (docs/operations.md, "Retention")`)
    return 0
  } catch (err) {
    bar.stop()
    if (err instanceof UnknownCampaignError) {
      console.error(`goalpost recompute: ${err.message}`)
      return 1
    }
    throw err
  } finally {
    await db.destroy()
  }
}
