import { ConfigError } from '../errors.ts'
import { ConfigDocumentError } from '../core/config-document/index.ts'
import { loadConfig } from '../config.ts'
import { migrateToLatest } from '../db/migrate.ts'
import { applyCommand } from './apply.ts'
import { runUntilSignal } from './runtime.ts'
import { recomputeCommand } from './recompute.ts'
import { importCommand } from './import.ts'

const USAGE = `usage: goalpost <command>

  start      migrate, then serve HTTP and run the workers in one process
  serve      only the HTTP server (Segment tracking API, webhook, health)
  worker     only the queue workers
  migrate    create the database if missing and run migrations to latest
  apply FILE validate a YAML/JSON config document and save it as the whole configuration
  import FILE.jsonl
             load Segment messages (one a line, each with its receivedAt) as a trusted backfill
  recompute [--campaign KEY] [--dry-run]
             rebuild journeys, conversions and segment history from the log (R3)

Environment: DATABASE_URL, REDIS_URL, PORT, HOST, GOALPOST_WRITE_KEYS,
GOALPOST_WEBHOOK_SECRET, GOALPOST_ADMIN_TOKEN, GOALPOST_CONFIG, GOALPOST_QUEUE_PREFIX (see README).`

async function main(argv: string[]): Promise<number> {
  const [command] = argv
  switch (command) {
    case 'start':
      await runUntilSignal({ migrate: true, http: true, workers: true })
      return -1
    case 'serve':
      await runUntilSignal({ migrate: false, http: true, workers: false })
      return -1
    case 'worker':
      await runUntilSignal({ migrate: false, http: false, workers: true })
      return -1
    case 'apply':
      return applyCommand(argv.slice(1), loadConfig())
    case 'recompute':
      return recomputeCommand(argv.slice(1))
    case 'import':
      return importCommand(argv.slice(1), loadConfig())
    case 'migrate': {
      const { created, ran } = await migrateToLatest(loadConfig().databaseUrl)
      if (created) console.log('created the database')
      console.log(ran.length > 0 ? `ran ${ran.length} migration(s):\n  ${ran.join('\n  ')}` : 'already up to date')
      return 0
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE)
      return command === undefined ? 1 : 0
    default:
      console.error(`goalpost: unknown command "${command}"\n\n${USAGE}`)
      return 1
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  (err) => {
    console.error(err instanceof ConfigError || err instanceof ConfigDocumentError ? err.message : err)
    process.exit(1)
  },
)
