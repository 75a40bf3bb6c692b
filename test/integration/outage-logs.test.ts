/**
 * What an operator's log shows when Postgres or Redis goes away under load
 * (issue 9: logs an operator can live with): one warning when a dependency
 * becomes unreachable, one info line with the outage's duration when it is
 * back, no stack traces and no knex noise on stderr for these expected,
 * retried errors, and never a trait, a property or a secret. `goalpost start`
 * runs as a child process, exactly as `npm start` runs it, behind TCP proxies
 * this file cuts and restores (the shared servers are never touched); the
 * producer is the real analytics-node client.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Analytics } from '@segment/analytics-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { REDIS_URL } from '../helpers/env.ts'
import { ADMIN_TOKEN, WEBHOOK_SECRET, WRITE_KEY, testEnv } from '../helpers/goalpost.ts'
import { deleteQueuePrefix, testQueuePrefix } from '../helpers/redis.ts'
import { startTcpProxy, throughProxy, type TcpProxy } from '../helpers/tcp-proxy.ts'
import { waitFor } from '../helpers/wait.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CLI = fileURLToPath(new URL('../../src/cli/index.ts', import.meta.url))
/** Personal data sent in traits and properties: must never reach a log line. */
const PII = ['pii-email-7f3a@example.com', 'pii-prop-91c2', 'pii-name-Zyxwv']

let database: TestDatabase
let prefix: string
let pgProxy: TcpProxy
let redisProxy: TcpProxy
let child: ChildProcess
let url = ''
const stdout: string[] = []
const stderr: string[] = []
let analytics: Analytics
let sent = 0

beforeAll(async () => {
  database = await createTestDatabase()
  prefix = testQueuePrefix()
  const pgUrl = new URL(database.url)
  pgProxy = await startTcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) })
  const redisUrl = new URL(REDIS_URL)
  redisProxy = await startTcpProxy({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) })
  const env = testEnv(database, prefix, {
    DATABASE_URL: throughProxy(database.url, pgProxy),
    REDIS_URL: throughProxy(REDIS_URL, redisProxy),
    GOALPOST_LOG_LEVEL: 'info',
  })
  child = spawn(process.execPath, ['--import', 'tsx', CLI, 'start'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let partial = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n')
    partial = lines.pop()!
    stdout.push(...lines)
  })
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString()))
  const listening = await waitFor(() => stdout.map(parse).find((l) => typeof l.msg === 'string' && /Server listening at/.test(l.msg)), {
    timeoutMs: 30_000,
    what: 'goalpost start listening',
  })
  url = String(listening.msg).replace(/^.*Server listening at /, '')
  await waitFor(() => stdout.some((l) => l.includes('workers started')), { timeoutMs: 30_000, what: 'workers started' })
  analytics = new Analytics({ writeKey: WRITE_KEY, host: url, flushAt: 20, flushInterval: 20, maxRetries: 20 })
}, 60_000)

afterAll(async () => {
  // OUTAGE_LOGS=1 prints what goalpost logged, to see the lines an operator gets.
  if (process.env.OUTAGE_LOGS) console.log(stdout.join('\n'), '\nstderr:', stderr.join(''))
  await analytics?.closeAndFlush({ timeout: 5_000 }).catch(() => {})
  if (child && child.exitCode === null) {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
  }
  await pgProxy?.close()
  await redisProxy?.close()
  if (prefix) await deleteQueuePrefix(prefix)
  await database?.drop()
})

function parse(line: string): Record<string, unknown> {
  try {
    return JSON.parse(line) as Record<string, unknown>
  } catch {
    return { unparsed: line }
  }
}
const logLines = () => stdout.filter((l) => l.trim() !== '').map(parse)
const matching = (re: RegExp) => logLines().filter((l) => typeof l.msg === 'string' && re.test(l.msg))

/** Sends `n` calls carrying personal data, spread over people, through analytics-node. */
function send(n: number) {
  for (let i = 0; i < n; i++) {
    const userId = `outage-u${(sent + i) % 50}`
    if (i % 5 === 0) analytics.identify({ userId, traits: { email: PII[0], name: PII[2], plan: 'pro' } })
    else analytics.track({ userId, event: 'Order Completed', properties: { note: PII[1], total: i } })
  }
  sent += n
}

const stored = async () => Number((await database.db('events').count({ n: '*' }))[0].n)
const allStored = () => waitFor(async () => (await stored()) === sent, { timeoutMs: 60_000, intervalMs: 200, what: `${sent} events stored` })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('logs during outages (issue 9)', () => {
  it('a Postgres outage under load: one warning, one recovery line with its duration, nothing lost', async () => {
    send(200)
    await analytics.flush()
    await allStored()
    await pgProxy.cut()
    send(300) // accepted into Redis; their jobs fail and are retried while Postgres is away
    await analytics.flush()
    await sleep(4_000)
    await pgProxy.restore()
    await allStored()
    await waitFor(() => matching(/^Postgres reachable again/).length > 0, { what: 'the recovery line' })
    const down = matching(/^Postgres unreachable since/)
    const back = matching(/^Postgres reachable again after [\d.]+ s/)
    expect(down).toHaveLength(1)
    expect(down[0].level).toBe(40) // warn
    expect(back).toHaveLength(1)
    expect(back[0].level).toBe(30) // info
    expect(Number(back[0].downMs)).toBeGreaterThan(1_000)
  }, 120_000)

  it('a Redis outage under load: one warning, one recovery line, the client retries the 503s and nothing is lost', async () => {
    await redisProxy.cut()
    send(200) // the server answers 503 while the queue is away; analytics-node retries
    const flushed = analytics.flush()
    await sleep(3_000)
    await redisProxy.restore()
    await flushed
    await allStored()
    await waitFor(() => matching(/^Redis reachable again/).length > 0, { what: 'the Redis recovery line' })
    expect(matching(/^Redis unreachable since/)).toHaveLength(1)
    expect(matching(/^Redis reachable again after [\d.]+ s/)).toHaveLength(1)
  }, 120_000)

  it('no stack traces, no error-level lines, no knex noise on stderr for these transient errors', () => {
    const lines = logLines()
    expect(lines.filter((l) => 'unparsed' in l)).toEqual([])
    expect(lines.filter((l) => Number(l.level) >= 50).map((l) => l.msg)).toEqual([])
    expect(stdout.filter((l) => l.includes('"stack"'))).toEqual([])
    expect(stderr.join('')).not.toMatch(/Connection Error|Acquire connection error|\n\s+at /)
  })

  it('never logs a trait, a property, the write key, the admin token or the webhook secret', () => {
    const all = stdout.join('\n') + stderr.join('')
    for (const secret of [...PII, WRITE_KEY, ADMIN_TOKEN, WEBHOOK_SECRET]) expect(all, secret).not.toContain(secret)
    // The log is not empty: it said what happened.
    expect(logLines().length).toBeGreaterThan(4)
  })
})
