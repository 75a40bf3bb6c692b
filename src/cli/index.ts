import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { UsageError, describeUserError } from './user-errors.ts'

/**
 * The `goalpost` command line (CONTRACT.md, Set-up and commands), on commander.
 * Exit codes: 0 done; 1 failed (bad environment or file, a dependency
 * unreachable, what a command documents); 2 a usage error (unknown command or
 * option, missing or bad argument), answered with one line and the usage.
 * `--help` on any command only prints its help. Each command's code is
 * imported when it runs, so help and usage errors answer at once.
 */

const ENVIRONMENT = `
Environment (every variable optional for local use; see README.md):
  DATABASE_URL             Postgres (default postgres://postgres@127.0.0.1:5432/goalpost)
  REDIS_URL                Redis (default redis://127.0.0.1:6379)
  PORT, HOST               HTTP listen address (default 8080, 127.0.0.1)
  GOALPOST_WRITE_KEYS      comma-separated write keys accepted on /v1/*
  GOALPOST_WEBHOOK_SECRET  secret of Segment's webhook signature
  GOALPOST_ADMIN_TOKEN     bearer token for /admin/*
  GOALPOST_CONFIG          a config file applied at start
  GOALPOST_QUEUE_PREFIX    BullMQ key prefix (default goalpost)
  GOALPOST_LOG_LEVEL, GOALPOST_INGEST_CONCURRENCY, GOALPOST_INGEST_GROUP_MESSAGES,
  GOALPOST_JOB_LOCK_MS, GOALPOST_IMPORT_PROGRESS_MS

Exit codes: 0 done, 1 failed (the reason on one line), 2 usage error.`

/** The environment, read when a command runs (zod is not loaded for help). */
const loadConfig = async () => (await import('../config.ts')).loadConfig()

/** What an action reports; -1 keeps the process running (the long-running commands). */
let exitCode = 0
const KEEP_RUNNING = -1
/** The command whose action runs, for messages ("goalpost rejected list: …") and its usage. */
let running: Command | undefined

const pathOf = (cmd: Command): string => (cmd.parent?.parent ? `${pathOf(cmd.parent)} ${cmd.name()}` : cmd.name())

const positiveInteger = (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a whole number of at least 1')
  return Number(value)
}

/** `--since`, checked when the command runs (its parser lives with the dead letters' code). */
async function since(value: string | undefined): Promise<Date | undefined> {
  if (value === undefined) return undefined
  const { parseSince } = await import('../jobs/replay-rejected.ts')
  const parsed = parseSince(value, Date.now())
  if (parsed === null)
    throw new UsageError(`option '--since <time>' argument '${value}' is invalid. must be an ISO 8601 date-time (2026-12-01T00:00:00Z) or a duration ago (30m, 24h, 7d)`)
  return parsed
}

function buildProgram(): Command {
  const program = new Command('goalpost')
    .description('Conversion attribution for Segment pipelines: ingest, evaluate, attribute.')
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({
      // Commander's "error: …" plus its "(Did you mean …?)" as one line.
      outputError: (text, write) => write(`goalpost: ${text.replace(/\n\(Did you mean (.+)\?\)/, ' (did you mean $1?)').trim()}\n`),
    })
    .addHelpText('after', ENVIRONMENT)
    .hook('preAction', (_program, action) => {
      running = action
    })
  program.helpCommand('help [command]', 'show the help of goalpost or of one command')

  const service = (name: string, description: string, parts: { migrate: boolean; http: boolean; workers: boolean }) =>
    program
      .command(name)
      .description(description)
      .action(async () => {
        const { runUntilSignal } = await import('./runtime.ts')
        await runUntilSignal(parts)
        exitCode = KEEP_RUNNING
      })
  service('start', 'migrate, then serve HTTP and run the workers and job schedulers in one process (what npm start runs)', {
    migrate: true,
    http: true,
    workers: true,
  })
  service('serve', 'only the HTTP server (Segment tracking API, webhook, admin, health, metrics)', { migrate: false, http: true, workers: false })
  service('worker', 'only the queue workers and job schedulers', { migrate: false, http: false, workers: true })

  program
    .command('migrate')
    .description('create the database if missing and run the migrations to latest')
    .option('--json', 'print {created, ran} as JSON')
    .action(async (opts: { json?: boolean }) => {
      const config = await loadConfig()
      const { migrateCommand } = await import('./migrate.ts')
      exitCode = await migrateCommand(config, opts)
    })

  program
    .command('apply')
    .description('validate a YAML or JSON configuration document and save it as the whole configuration (exit 1 listing every error, saving nothing)')
    .argument('<file>', 'the configuration document (.yaml, .yml or .json)')
    .option('--json', 'print the result (revision, changes, goal versions) as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const config = await loadConfig()
      const { applyCommand } = await import('./apply.ts')
      exitCode = await applyCommand(file, config, opts)
    })

  program
    .command('import')
    .description('load Segment messages (one JSON object a line, each with its receivedAt) as a trusted backfill; exit 2 when some lines were invalid')
    .argument('<file>', 'a JSON Lines file of Segment messages')
    .option('--json', 'print the summary as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const config = await loadConfig()
      const { importCommand } = await import('./import.ts')
      exitCode = await importCommand(file, config, opts)
    })

  program
    .command('recompute')
    .description('rebuild journeys, conversions, exits and segment history from the persisted log (R3)')
    .option('--campaign <key>', 'only this campaign')
    .option('--dry-run', 'count what would change, change nothing')
    .option('--json', 'print the counts as JSON')
    .action(async (opts: { campaign?: string; dryRun?: boolean; json?: boolean }) => {
      const config = await loadConfig()
      const { recomputeCommand } = await import('./recompute.ts')
      exitCode = await recomputeCommand(config, opts)
    })

  program
    .command('status')
    .description('queues, evaluation lag, scheduled wake-up, configuration revision, Postgres and Redis reachability (exit 1 when one is unreachable)')
    .option('--json', 'print the status as JSON')
    .action(async (opts: { json?: boolean }) => {
      const config = await loadConfig()
      const { statusCommand } = await import('./status.ts')
      exitCode = await statusCommand(config, opts)
    })

  program
    .command('schedules')
    .description("the configuration's scheduled jobs (recompute, retention) with their next run")
    .option('--json', 'print {revision, reconciled_revision, schedules, stale} as JSON')
    .action(async (opts: { json?: boolean }) => {
      exitCode = await (await import('./schedules.ts')).schedulesCommand(await loadConfig(), opts)
    })

  const rejected = program
    .command('rejected')
    .description('messages Postgres refused for good (dead letters): list them, replay them once the cause is fixed')
  const filters = (cmd: Command) =>
    cmd
      .option('--reason <text>', 'only those whose reason contains this text (case-insensitive), e.g. a SQLSTATE such as 22003')
      .option('--since <time>', 'only those rejected since then: an ISO 8601 date-time or a duration ago (24h, 7d)')
  filters(rejected.command('list').description('list rejected messages not replayed yet (with --all, also the replayed ones)'))
    .option('--all', 'include messages already replayed')
    .option('--limit <n>', 'list at most this many (default 100)', positiveInteger)
    .option('--json', 'print {total, messages} as JSON')
    .action(async (opts: { reason?: string; since?: string; all?: boolean; limit?: number; json?: boolean }) => {
      const config = await loadConfig()
      const { rejectedListCommand } = await import('./rejected.ts')
      exitCode = await rejectedListCommand(config, { ...opts, since: await since(opts.since) })
    })
  filters(
    rejected
      .command('replay')
      .description('queue rejected messages again through the normal ingest path; idempotent by messageId (stored ones are duplicates; one replayed is not replayed again)'),
  )
    .option('--dry-run', 'say what would be replayed, change nothing')
    .option('--json', 'print the counts as JSON')
    .action(async (opts: { reason?: string; since?: string; dryRun?: boolean; json?: boolean }) => {
      const config = await loadConfig()
      const { rejectedReplayCommand } = await import('./rejected.ts')
      exitCode = await rejectedReplayCommand(config, { ...opts, since: await since(opts.since) })
    })
  return program
}

async function targets() {
  try {
    return await loadConfig()
  } catch {
    return {}
  }
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram()
  // `goalpost help nosuch`: commander would print the help without saying why.
  if (argv[0] === 'help' && argv[1] !== undefined && !program.commands.some((c) => c.name() === argv[1])) argv = [argv[1]]
  if (argv.length === 0) {
    console.error('goalpost: error: no command given\n')
    program.outputHelp({ error: true })
    return 2
  }
  try {
    await program.parseAsync(argv, { from: 'user' })
    return exitCode
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and `help` exit 0; a missing command or subcommand (help shown on stderr) and every parse error exit 2.
      return err.exitCode === 0 ? 0 : 2
    }
    if (err instanceof UsageError) {
      console.error(`goalpost: error: ${err.message}\n`)
      ;(running ?? program).outputHelp({ error: true })
      return 2
    }
    const line = describeUserError(err, await targets())
    console.error(line === null ? err : `goalpost ${running ? pathOf(running) : ''}: ${line}`)
    return 1
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exit(code)
})
