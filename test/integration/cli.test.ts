import { createServer } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { Worker, type Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { validateConfigDocument } from '../../src/core/config-document/index.ts'
import { applyConfig } from '../../src/db/config.ts'
import { QUEUE_NAMES, WAKE_EVERY_MS, createIngestQueue, createMaintenanceQueue, type IngestJobData, type MaintenanceJobData } from '../../src/jobs/queues.ts'
import { createRedis, waitUntilReady } from '../../src/jobs/redis.ts'
import type { Status } from '../../src/cli/status.ts'
import { goalpostCli, inBatches, type CliResult } from '../helpers/cli.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { PG_SERVER_URL, REDIS_URL, databaseUrl, uniqueSuffix } from '../helpers/env.ts'
import { testEnv } from '../helpers/goalpost.ts'
import { deleteQueuePrefix, testQueuePrefix } from '../helpers/redis.ts'

// The command line as an operator meets it (CONTRACT.md, Set-up and
// commands): help for every command that never runs it, usage errors answered
// with one line and the usage (exit 2), user errors with one clear line
// (exit 1), and the --json outputs a script reads.

let database: TestDatabase
let prefix: string
let env: Record<string, string>
let dir: string
let freePort: number
/** A database name that must never come to exist: --help must not create or migrate it. */
const untouched = `goalpost_t_${uniqueSuffix()}_never`

const STACK = /\n\s+at .+:\d+:\d+/

async function portNobodyListensOn(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres` })
  await client.connect()
  try {
    return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1
  } finally {
    await client.end()
  }
}

beforeAll(async () => {
  database = await createTestDatabase()
  prefix = testQueuePrefix()
  env = testEnv(database, prefix)
  dir = await mkdtemp(path.join(tmpdir(), 'goalpost-cli-'))
  freePort = await portNobodyListensOn()
})
afterAll(async () => {
  await deleteQueuePrefix(prefix)
  await database?.drop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const COMMANDS = ['start', 'serve', 'worker', 'migrate', 'apply', 'import', 'recompute', 'status', 'schedules', 'rejected', 'rejected list', 'rejected replay']

/** A usage error: exit 2, nothing on stdout, one line saying what is wrong, then the usage. */
function expectUsageError(r: CliResult, line: string | RegExp, usage: string) {
  expect(r.code, r.stderr).toBe(2)
  expect(r.stdout).toBe('')
  const [first, blank, third] = r.stderr.split('\n')
  if (typeof line === 'string') expect(first).toBe(line)
  else expect(first).toMatch(line)
  expect(blank).toBe('')
  expect(third).toBe(`Usage: ${usage}`)
  expect(r.stderr).not.toMatch(STACK)
}

describe('goalpost help and --help', () => {
  it('goalpost help (and --help) lists every command and the environment variables, exit 0', async () => {
    const [help, flag] = await inBatches([() => goalpostCli(['help'], env), () => goalpostCli(['--help'], env)])
    for (const r of [help, flag]) {
      expect(r.code).toBe(0)
      expect(r.stderr).toBe('')
      for (const command of ['start', 'serve', 'worker', 'migrate', 'apply', 'import', 'recompute', 'status', 'rejected', 'help'])
        expect(r.stdout).toMatch(new RegExp(`^  ${command} `, 'm'))
      for (const variable of ['DATABASE_URL', 'REDIS_URL', 'PORT, HOST', 'GOALPOST_WRITE_KEYS', 'GOALPOST_WEBHOOK_SECRET', 'GOALPOST_ADMIN_TOKEN', 'GOALPOST_CONFIG', 'GOALPOST_QUEUE_PREFIX'])
        expect(r.stdout).toContain(variable)
    }
    expect(flag.stdout).toBe(help.stdout)
  })

  it('<command> --help and help <command> print the command\'s usage and never run it: nothing starts, nothing is created or migrated', { timeout: 180_000 }, async () => {
    // Were a command to run, it would migrate (creating `untouched`) or wait on
    // an unreachable Redis; the child's timeout is the safety net.
    const unused = { ...env, DATABASE_URL: databaseUrl(untouched), REDIS_URL: `redis://127.0.0.1:${freePort}` }
    const HELP_COMMANDS = ['start', 'migrate', 'rejected']
    const runs = await inBatches([
      ...COMMANDS.map((command) => () => goalpostCli([...command.split(' '), '--help'], unused, 30_000)),
      ...HELP_COMMANDS.map((command) => () => goalpostCli(['help', command], unused, 30_000)),
    ])
    COMMANDS.forEach((command, i) => {
      const flag = runs[i]
      expect(flag.code, `${command} --help: ${flag.stderr}`).toBe(0)
      expect(flag.stderr).toBe('')
      expect(flag.stdout.split('\n')[0]).toMatch(new RegExp(`^Usage: goalpost ${command}( |$)`))
    })
    HELP_COMMANDS.forEach((command, i) => {
      const help = runs[COMMANDS.length + i]
      expect(help.code).toBe(0)
      expect(help.stdout).toBe(runs[COMMANDS.indexOf(command)].stdout)
    })
    // Each command's own options are in its help.
    const byCommand = Object.fromEntries(COMMANDS.map((c, i) => [c, runs[i].stdout]))
    expect(byCommand.recompute).toMatch(/--campaign <key>[\s\S]*--dry-run[\s\S]*--json/)
    expect(byCommand['rejected list']).toMatch(/--reason <text>[\s\S]*--since <time>[\s\S]*--all[\s\S]*--limit <n>[\s\S]*--json/)
    expect(byCommand['rejected replay']).toMatch(/--reason <text>[\s\S]*--since <time>[\s\S]*--dry-run/)
    expect(byCommand.status).toContain('--json')
    expect(await databaseExists(untouched)).toBe(false)
  })
})

describe('usage errors: one line and the usage, exit 2', () => {
  it('an unknown command, an unknown option (on every kind of command), a missing or extra argument, a bad option value, no command', { timeout: 180_000 }, async () => {
    const unused = { ...env, DATABASE_URL: databaseUrl(untouched) }
    const [strat, startOpt, recomputeOpt, listOpt, statusOpt, noFile, twoFiles, since, limit, none, helpUnknown, noSub] = await inBatches(
      [
        ['strat'],
        ['start', '--bogus'],
        ['recompute', '--bogus'],
        ['rejected', 'list', '--bogus'],
        ['status', '--verbose'],
        ['apply'],
        ['apply', 'a.yaml', 'b.yaml'],
        ['rejected', 'list', '--since', 'yesterday'],
        ['rejected', 'list', '--limit', '0'],
        [],
        ['help', 'nosuch'],
        ['rejected'],
      ].map((args) => () => goalpostCli(args, unused, 30_000)),
    )
    expectUsageError(strat, "goalpost: error: unknown command 'strat' (did you mean start?)", 'goalpost [options] [command]')
    expectUsageError(startOpt, "goalpost: error: unknown option '--bogus'", 'goalpost start [options]')
    expectUsageError(recomputeOpt, "goalpost: error: unknown option '--bogus'", 'goalpost recompute [options]')
    expectUsageError(listOpt, "goalpost: error: unknown option '--bogus'", 'goalpost rejected list [options]')
    expectUsageError(statusOpt, "goalpost: error: unknown option '--verbose'", 'goalpost status [options]')
    expectUsageError(noFile, "goalpost: error: missing required argument 'file'", 'goalpost apply [options] <file>')
    expectUsageError(twoFiles, /^goalpost: error: too many arguments for 'apply'/, 'goalpost apply [options] <file>')
    expectUsageError(since, /^goalpost: error: option '--since <time>' argument 'yesterday' is invalid\. must be an ISO 8601 date-time/, 'goalpost rejected list [options]')
    expectUsageError(limit, /^goalpost: error: option '--limit <n>' argument '0' is invalid/, 'goalpost rejected list [options]')
    expectUsageError(none, 'goalpost: error: no command given', 'goalpost [options] [command]')
    expectUsageError(helpUnknown, "goalpost: error: unknown command 'nosuch'", 'goalpost [options] [command]')
    // A command group without its subcommand: its usage, listing them.
    expect(noSub.code).toBe(2)
    expect(noSub.stderr).toMatch(/^Usage: goalpost rejected \[options\] \[command\][\s\S]*\n {2}list \[options\][\s\S]*\n {2}replay \[options\]/)
    expect(await databaseExists(untouched)).toBe(false)
  })
})

describe('user errors: one clear line, no stack trace, exit 1', () => {
  it('a bad environment, Postgres unreachable, a missing file', { timeout: 120_000 }, async () => {
    const [badEnv, noPostgres, noFile] = await inBatches([
      () => goalpostCli(['migrate'], { ...env, PORT: 'eighty', GOALPOST_QUEUE_PREFIX: 'a:b' }),
      () => goalpostCli(['recompute'], { ...env, DATABASE_URL: `postgres://postgres@127.0.0.1:${freePort}/goalpost` }),
      () => goalpostCli(['import', path.join(dir, 'missing.jsonl')], env),
    ])
    expect(badEnv.code).toBe(1)
    expect(badEnv.stderr).toBe(
      'goalpost migrate: invalid configuration:\n  - PORT: must be a whole number\n  - GOALPOST_QUEUE_PREFIX: must be 1-64 letters, digits, _ - { } (no ":")\nSet these environment variables and start again.\n',
    )
    expect(noPostgres.code).toBe(1)
    expect(noPostgres.stderr).toBe(
      `goalpost recompute: cannot use Postgres at postgres://postgres@127.0.0.1:${freePort}/goalpost: connect ECONNREFUSED 127.0.0.1:${freePort}. Check DATABASE_URL and that Postgres is running.\n`,
    )
    expect(noFile.code).toBe(1)
    expect(noFile.stderr).toMatch(/^goalpost import: ENOENT: no such file or directory, stat '.*missing\.jsonl'\n$/)
  })
})

describe('--json outputs', () => {
  it('migrate --json says whether it created the database and which migrations ran; recompute, apply and import print JSON summaries', { timeout: 180_000 }, async () => {
    const own = await createTestDatabase()
    const env = testEnv(own, prefix)
    try {
      await jsonOutputs(env)
    } finally {
      await own.drop()
    }
  })
})

async function jsonOutputs(env: Record<string, string>) {
  const fresh = `goalpost_t_${uniqueSuffix()}`
  try {
    const first = await goalpostCli(['migrate', '--json'], { ...env, DATABASE_URL: databaseUrl(fresh) })
    expect(first.code, first.stderr).toBe(0)
    const created = JSON.parse(first.stdout)
    expect(created.created).toBe(true)
    expect(created.ran).toContain('20261203010000_rejected_replay')
    const again = await goalpostCli(['migrate', '--json'], { ...env, DATABASE_URL: databaseUrl(fresh) })
    expect(JSON.parse(again.stdout)).toEqual({ created: false, ran: [] })
  } finally {
    const admin = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres` })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(fresh)} WITH (FORCE)`)
    await admin.end()
  }

  const configFile = path.join(dir, 'config.json')
  await writeFile(configFile, JSON.stringify({ segments: [{ key: 'pro', name: 'Pro', match: 'all', conditions: [{ attribute: 'plan', op: 'eq', value: 'pro' }] }] }))
  const lines = path.join(dir, 'backfill.jsonl')
  await writeFile(
    lines,
    [
      { type: 'identify', userId: 'json-u1', traits: { plan: 'pro' }, messageId: 'json-1', receivedAt: '2026-11-01T00:00:00.000Z' },
      { type: 'track', userId: 'json-u1', event: 'Viewed', messageId: 'json-2', receivedAt: '2026-11-01T00:01:00.000Z' },
    ]
      .map((m) => JSON.stringify(m))
      .join('\n') + '\n',
  )
  const applied = await goalpostCli(['apply', configFile, '--json'], env)
  expect(applied.code, applied.stderr).toBe(0)
  expect(JSON.parse(applied.stdout)).toMatchObject({ revision: 1, changed: true, changes: ['segment pro: added'] })
  const imported = await goalpostCli(['import', lines, '--json'], env)
  expect(imported.code, imported.stderr).toBe(0)
  expect(JSON.parse(imported.stdout)).toEqual({ file: lines, lines: 2, inserted: 2, duplicates: 0, invalid: 0, evaluated: 1 })
  const recomputed = await goalpostCli(['recompute', '--dry-run', '--json'], env)
  expect(recomputed.code, recomputed.stderr).toBe(0)
  const zero = { added: 0, changed: 0, removed: 0 }
  expect(JSON.parse(recomputed.stdout)).toEqual({
    dry_run: true,
    campaign: null,
    people: 1,
    changes: { journeys: zero, conversions: zero, memberships: zero, deliveries: zero },
  })
  const unknown = await goalpostCli(['recompute', '--campaign', 'nosuch', '--json'], env)
  expect(unknown.code).toBe(1)
  expect(unknown.stderr).toMatch(/^goalpost recompute: [^\n]*nosuch[^\n]*\n$/)
}

describe('goalpost status', () => {
  let redis: Redis
  let ingest: Queue<IngestJobData>
  let maintenance: Queue<MaintenanceJobData>
  const now = Date.now()

  beforeAll(async () => {
    redis = createRedis(REDIS_URL, 'producer', prefix)
    await waitUntilReady(redis)
    ingest = createIngestQueue(redis, prefix)
    maintenance = createMaintenanceQueue(redis, prefix)
  })
  afterAll(async () => {
    await ingest?.close()
    await maintenance?.close()
    redis?.disconnect()
  })

  it('--json reports queue depths, the oldest waiting batch, the evaluation backlog, the wake-up and the configuration revision', { timeout: 120_000 }, async () => {
    const doc = { segments: [{ key: 'vip', name: 'VIP', match: 'all', conditions: [{ attribute: 'plan', op: 'eq', value: 'vip' }] }] }
    const validated = validateConfigDocument(doc)
    if (!validated.ok) throw new Error(validated.errors.join('\n'))
    const { revision } = await applyConfig(database.db, validated.document, { now: new Date(now - 3_600_000), source: 'test:status', raw: doc })
    // Two people whose next change in time is 10 minutes overdue, one of them
    // evaluated under an older configuration; one due tomorrow.
    await database.db('person_evaluations').insert([
      { person_id: 'st-1', evaluated_at: new Date(now - 3_600_000), config_revision: revision, next_wake_at: new Date(now - 600_000) },
      { person_id: 'st-2', evaluated_at: new Date(now - 3_600_000), config_revision: revision - 1, next_wake_at: new Date(now - 60_000) },
      { person_id: 'st-3', evaluated_at: new Date(now - 3_600_000), config_revision: revision, next_wake_at: new Date(now + 86_400_000) },
    ])
    // Two batches no worker has taken, the older queued two minutes ago, and one in backoff.
    await ingest.add('batch', { source: 'api', messages: [] }, { timestamp: now - 120_000 })
    await ingest.add('batch', { source: 'api', messages: [] })
    await ingest.add('batch', { source: 'api', messages: [] }, { delay: 3_600_000 })
    // A wake-up that ran (woke 7 people) and the scheduler that queues the next.
    const connection = createRedis(REDIS_URL, 'worker', prefix)
    const worker = new Worker<MaintenanceJobData>(QUEUE_NAMES.maintenance, async () => ({ woken: 7, analyzed: [] }), { connection, prefix })
    const done = new Promise((resolve) => worker.once('completed', resolve))
    await maintenance.add('wake', { kind: 'wake' })
    await done
    await worker.close()
    connection.disconnect()
    await maintenance.upsertJobScheduler('wake', { every: WAKE_EVERY_MS, startDate: now + 3_600_000 }, { name: 'wake', data: { kind: 'wake' } })

    const r = await goalpostCli(['status', '--json'], env)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    const s = JSON.parse(r.stdout) as Status
    expect(s).toMatchObject({
      ok: true,
      queue_prefix: prefix,
      postgres: { reachable: true, error: null, url: database.url },
      redis: { reachable: true, error: null },
      queues: { ingest: { waiting: 2, active: 0, delayed: 1, failed: 0 }, maintenance: { waiting: 0, active: 0, failed: 0, delayed: 1 } },
      wake: { every_seconds: WAKE_EVERY_MS / 1000, last_woken: 7 },
      evaluation: { due_people: 2, due_people_capped: false, oldest_due_at: new Date(now - 600_000).toISOString(), stale_revision_people: 1, stale_revision_people_capped: false },
      config: { revision, source: 'test:status', applied_at: new Date(now - 3_600_000).toISOString() },
    })
    expect(s.queues!.ingest.oldest_waiting_age_seconds).toBeGreaterThanOrEqual(120)
    expect(Date.parse(s.wake!.next_at!)).toBeGreaterThanOrEqual(now + 3_600_000)
    expect(Date.parse(s.wake!.last_finished_at!)).toBeGreaterThanOrEqual(now)
    // The larger of the two: the wake-up overdue by 10 minutes.
    expect(s.evaluation!.lag_seconds).toBeGreaterThanOrEqual(600)

    const text = await goalpostCli(['status'], env)
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^ {2}queue ingest +waiting 2 {2}active 0 {2}delayed 1 {2}failed 0 {2}oldest waiting \d+ s$/m)
    expect(text.stdout).toMatch(new RegExp(`^ {2}config {6}revision ${revision}, applied .* from test:status$`, 'm'))
  })

  it('with Redis unreachable: exit 1 with one line naming it, Postgres still reported; with Postgres unreachable likewise', { timeout: 120_000 }, async () => {
    const [noRedis, noPostgres] = await inBatches([
      () => goalpostCli(['status', '--json'], { ...env, REDIS_URL: `redis://127.0.0.1:${freePort}` }, 30_000),
      () => goalpostCli(['status'], { ...env, DATABASE_URL: `postgres://postgres@127.0.0.1:${freePort}/goalpost` }, 30_000),
    ])
    expect(noRedis.code).toBe(1)
    expect(noRedis.stderr).toMatch(new RegExp(`^goalpost status: Redis unreachable at redis://127\\.0\\.0\\.1:${freePort}: [^\\n]+\\n$`))
    const s = JSON.parse(noRedis.stdout) as Status
    expect(s).toMatchObject({ ok: false, redis: { reachable: false }, postgres: { reachable: true }, queues: null, evaluation: { lag_seconds: null } })
    expect(noPostgres.code).toBe(1)
    expect(noPostgres.stderr).toMatch(/^goalpost status: Postgres unreachable at postgres:\/\/postgres@127\.0\.0\.1:\d+\/goalpost: [^\n]*ECONNREFUSED[^\n]*\n$/)
    expect(noPostgres.stdout).toMatch(/^ {2}postgres {4}UNREACHABLE/m)
    expect(noPostgres.stdout).toMatch(/^ {2}redis {7}reachable/m)
  })

  it('with a database that is not migrated: Postgres reachable but failing, saying to run goalpost migrate; exit 1', { timeout: 60_000 }, async () => {
    const empty = `goalpost_t_${uniqueSuffix()}_empty`
    const admin = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres` })
    await admin.connect()
    try {
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(empty)}`)
      const r = await goalpostCli(['status', '--json'], { ...env, DATABASE_URL: databaseUrl(empty) }, 30_000)
      expect(r.code).toBe(1)
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, postgres: { reachable: true, error: expect.stringMatching(/not migrated.*run "goalpost migrate"/) }, evaluation: null })
      expect(r.stderr).toMatch(/^goalpost status: Postgres failing at [^\n]*not migrated[^\n]*\n$/)
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(empty)} WITH (FORCE)`)
      await admin.end()
    }
  })
})
