import type { Config } from '../config.ts'
import { migrateToLatest } from '../db/migrate.ts'

/** `goalpost migrate [--json]`: creates the database if missing, runs the pending migrations. */
export async function migrateCommand(config: Pick<Config, 'databaseUrl'>, opts: { json?: boolean } = {}): Promise<number> {
  const { created, ran } = await migrateToLatest(config.databaseUrl)
  if (opts.json) {
    console.log(JSON.stringify({ created, ran }))
    return 0
  }
  if (created) console.log('created the database')
  console.log(ran.length > 0 ? `ran ${ran.length} migration(s):\n  ${ran.join('\n  ')}` : 'already up to date')
  return 0
}
