import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { importFile } from '../../src/cli/import.ts'
import { validateConfigDocument } from '../../src/core/config-document/index.ts'
import { applyConfig } from '../../src/db/config.ts'
import { emptySummary } from '../../src/db/evaluation.ts'
import { INVALIDATED_WAKE_DELAY_MS } from '../../src/db/person-states.ts'
import { Importer, type ContextSource } from '../../src/jobs/import-messages.ts'
import { recompute } from '../../src/jobs/recompute.ts'
import { wakeDuePeople } from '../../src/jobs/wake.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { configure, ingest, normalised, NOW, reset, SNAPSHOT, snapshot } from '../helpers/determinism.ts'
import { testEnv } from '../helpers/goalpost.ts'
import { testQueuePrefix } from '../helpers/redis.ts'
import { rng, scenarioConfig, scenarioMessages, type ScenarioMessage } from '../helpers/scenario.ts'

const run = promisify(execFile)

const CONFIG = {
  campaigns: [
    {
      key: 'winback',
      external_ids: ['77'],
      goal: { event: 'Order Completed', within: '3d', after: 'delivered', value: 'total', effective_from: '2026-01-01T00:00:00Z' },
    },
  ],
}

const line = (m: object) => JSON.stringify(m)
const LINES = [
  line({ type: 'identify', userId: 'imp1', traits: { plan: 'pro' }, messageId: 'i1', receivedAt: '2026-03-01T10:00:00Z' }),
  line({ type: 'track', userId: 'imp1', event: 'Email Sent', properties: { delivery_id: 'imp-d1', campaign_id: '77' }, messageId: 'i2', receivedAt: '2026-03-01T11:00:00Z' }),
  line({ type: 'track', userId: 'imp1', event: 'Email Delivered', properties: { delivery_id: 'imp-d1', campaign_id: '77' }, messageId: 'i3', receivedAt: '2026-03-01T11:05:00Z' }),
  '{ not json',
  line({ type: 'track', userId: 'imp1', event: 'Order Completed', properties: { total: 12 }, messageId: 'no-time' }),
  '',
  line({ type: 'track', userId: 'imp1', event: 'Order Completed', properties: { total: 30 }, messageId: 'i4', receivedAt: '2026-03-03T09:00:00Z' }),
]

let database: TestDatabase
/** Chunked imports (`imported`) against the same messages persisted one by one (`streamed`). */
let imported: TestDatabase
let streamed: TestDatabase
let dir: string
let file: string
beforeAll(async () => {
  ;[database, imported, streamed] = await Promise.all([createTestDatabase(), createTestDatabase(), createTestDatabase()])
  const validated = validateConfigDocument(CONFIG)
  if (!validated.ok) throw new Error(validated.errors.join('\n'))
  await applyConfig(database.db, validated.document, { now: new Date('2026-01-01T00:00:00Z'), source: 'test', raw: CONFIG })
  dir = await mkdtemp(path.join(os.tmpdir(), 'goalpost-import-'))
  file = path.join(dir, 'backfill.jsonl')
  await writeFile(file, LINES.join('\n') + '\n')
})
afterAll(async () => {
  await Promise.all([database?.drop(), imported?.drop(), streamed?.drop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('goalpost import FILE.jsonl (CONTRACT.md commands)', () => {
  it("R1: each message's receivedAt is its processing time; invalid lines are reported by number; what they touch is evaluated", async () => {
    const problems: [number, string][] = []
    const summary = await importFile(file, { databaseUrl: database.url }, (n, p) => problems.push([n, p]))
    expect(summary).toMatchObject({ lines: 7, inserted: 4, duplicates: 0, invalid: 2 })
    expect(problems.map(([n]) => n)).toEqual([4, 5])
    expect(problems[1][1]).toMatch(/receivedAt: is required/)
    const events = await database.db('events').orderBy('seq').select('message_id', 'received_at', 'source')
    expect(events.map((e) => [e.message_id, e.received_at.toISOString(), e.source])).toEqual([
      ['i1', '2026-03-01T10:00:00.000Z', 'import'],
      ['i2', '2026-03-01T11:00:00.000Z', 'import'],
      ['i3', '2026-03-01T11:05:00.000Z', 'import'],
      ['i4', '2026-03-03T09:00:00.000Z', 'import'],
    ])
    // R17: the delivery opened a journey; R10: the purchase is inside its 3-day window.
    const conversions = await database.db('conversions').select('delivery_id', 'event_message_id', 'converted_at', 'value')
    expect(conversions).toEqual([{ delivery_id: 'imp-d1', event_message_id: 'i4', converted_at: new Date('2026-03-03T09:00:00Z'), value: '30' }])
  })

  it('re-importing the same file stores nothing new and changes no result (idempotent on messageId)', async () => {
    const before = await database.db('conversions').select()
    const summary = await importFile(file, { databaseUrl: database.url }, () => {})
    expect(summary).toMatchObject({ inserted: 0, duplicates: 4, invalid: 2 })
    expect(await database.db('conversions').select()).toEqual(before)
  })

  it('the CLI prints the summary, lists bad lines on stderr and exits 2 when some lines were invalid', async () => {
    const env = { ...process.env, ...testEnv(database, testQueuePrefix()) }
    const failed = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'import', file], { env }).then(
      () => null,
      (err: { code: number; stdout: string; stderr: string }) => err,
    )
    expect(failed?.code).toBe(2)
    expect(failed?.stdout).toMatch(/imported .*backfill\.jsonl: 0 stored, 4 already stored, 2 invalid \(of 7 lines\)/)
    expect(failed?.stderr).toMatch(/backfill\.jsonl:4: not JSON/)
  }, 60_000)
})

async function jsonl(name: string, messages: readonly ScenarioMessage[]): Promise<string> {
  const out = path.join(dir, name)
  await writeFile(out, messages.map((m) => JSON.stringify(m.message)).join('\n') + '\n')
  return out
}

/** Every table the rules write, as a replay of every log under the configuration in force gives it: it must change nothing. */
async function expectReplayResult(db: TestDatabase, label: string) {
  const before = await snapshot(db.db)
  const ctx = await configure(db.db, [])
  const replayed = await recompute(db.db, ctx, { now: NOW })
  expect(replayed.changes, `${label}: what a replay changed`).toEqual(emptySummary())
  expect(await snapshot(db.db), label).toEqual(before)
}

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8]

describe('goalpost import: large storing transactions, one evaluation per person per chunk (R3)', () => {
  it.each(SEEDS)('seed %i: an import cut in many chunks gives the rows of the same messages persisted one by one', async (seed) => {
    const r = rng(seed)
    const docs = scenarioConfig(r)
    const messages = scenarioMessages(r, 12)
    await Promise.all([reset(imported.db), reset(streamed.db)])
    const [, ctx] = await Promise.all([configure(imported.db, docs), configure(streamed.db, docs)])
    for (const m of messages) await ingest(streamed.db, ctx, [normalised(m.message)])
    // Transactions of 3 messages, an evaluation round every 7 messages or 4 people waiting,
    // 2 people or 5 messages per evaluating transaction: each person spans many of all three.
    const summary = await importFile(await jsonl(`seed-${seed}.jsonl`, messages), { databaseUrl: imported.url }, () => {}, {
      storeBatch: 3,
      chunk: 7,
      chunkPeople: 4,
      evaluateBatch: 2,
      evaluateMessages: 5,
      now: () => NOW,
    })
    expect(summary).toMatchObject({ lines: messages.length, inserted: messages.length, invalid: 0 })
    const [a, b] = await Promise.all([snapshot(imported.db), snapshot(streamed.db)])
    for (const table of Object.keys(SNAPSHOT)) expect(a[table], `seed ${seed}, table ${table}`).toEqual(b[table])
  })

  it.each(SEEDS)('seed %i: an import of older history under people with stored rows and states gives the replay result', async (seed) => {
    const r = rng(seed)
    const docs = scenarioConfig(r)
    const messages = scenarioMessages(r, 12)
    const cut = Math.floor(messages.length / 2)
    await reset(imported.db)
    const ctx = await configure(imported.db, docs)
    // The later half arrives live first, each message evaluated as it comes (rows and states)...
    for (const m of messages.slice(cut)) await ingest(imported.db, ctx, [normalised(m.message)], m.receivedAt)
    expect(await imported.db('person_evaluations').whereNotNull('state').count({ n: '*' })).not.toEqual([{ n: '0' }])
    // ...then the earlier half is imported: it sorts before every stored state.
    await importFile(await jsonl(`history-${seed}.jsonl`, messages.slice(0, cut)), { databaseUrl: imported.url }, () => {}, {
      storeBatch: 4,
      chunk: 10,
      now: () => NOW,
    })
    // Everyone whose state the import dropped was evaluated by it (a state is always stored)...
    expect(await imported.db('person_evaluations').whereNull('state').pluck('person_id')).toEqual([])
    // ...and the others catch up with time as the scheduled wake-up does (their last evaluation was live).
    await wakeDuePeople(imported.db, ctx, NOW)
    await expectReplayResult(imported, `seed ${seed}`)
  })

  it('an import that dies before evaluating leaves no usable state, and the scheduled wake-up gives the replay result', async () => {
    const r = rng(21)
    const docs = scenarioConfig(r)
    const messages = scenarioMessages(r, 12)
    const cut = Math.floor(messages.length / 2)
    await reset(imported.db)
    const ctx = await configure(imported.db, docs)
    for (const m of messages.slice(cut)) await ingest(imported.db, ctx, [normalised(m.message)], m.receivedAt)
    // The configuration is there for every storing transaction, then gone: the process died.
    let stores = Math.ceil(cut / 3)
    const dying: ContextSource = async () => {
      if (stores-- <= 0) throw new Error('killed')
      return ctx
    }
    const importer = new Importer(imported.db, dying, { storeBatch: 3, now: () => NOW })
    for (const m of messages.slice(0, cut)) await importer.add(normalised(m.message))
    await expect(importer.finish()).rejects.toThrow('killed')

    const touched = (await imported.db('events').where('source', 'import').distinct('person_id')).map((t: { person_id: string }) => t.person_id)
    const rows = await imported.db('person_evaluations').whereIn('person_id', touched)
    expect(rows.length).toBeGreaterThan(0)
    for (const row of rows) {
      expect(row.state).toBeNull()
      expect(row.next_wake_at.getTime()).toBeLessThanOrEqual(NOW + INVALIDATED_WAKE_DELAY_MS)
    }
    await wakeDuePeople(imported.db, ctx, NOW + INVALIDATED_WAKE_DELAY_MS)
    await expectReplayResult(imported, 'after the wake-up')
  })

  it('a configuration saved during an import: the batch that sees it is stored again, and everyone is evaluated under it', async () => {
    const docs = scenarioConfig(rng(5))
    const messages = scenarioMessages(rng(5), 12)
    await reset(imported.db)
    const ctx = await configure(imported.db, docs)
    // The same events matter; only a goal's window changes (R13 would need backdating otherwise).
    const changed = structuredClone(docs.at(-1)) as { campaigns: { key: string; goal: { within: string } }[] }
    changed.campaigns.find((c) => c.key === 'news')!.goal.within = '1d'
    let served = 0
    const configs: ContextSource = async (o) => (o?.fresh || served++ === 0 ? configure(imported.db, []) : ctx)
    const importer = new Importer(imported.db, configs, { storeBatch: 3, now: () => NOW })
    const half = Math.floor(messages.length / 2)
    for (const m of messages.slice(0, half)) await importer.add(normalised(m.message))
    await configure(imported.db, [changed])
    for (const m of messages.slice(half)) await importer.add(normalised(m.message))
    await importer.finish()
    const inForce = (await configure(imported.db, [])).revision
    expect(inForce).toBeGreaterThan(ctx.revision)
    expect(await imported.db('person_evaluations').distinct('config_revision').pluck('config_revision')).toEqual([inForce])
    await expectReplayResult(imported, 'after a save during the import')
  })

  it('prints progress on stderr while it runs (lines, lines/s, share of the file read, ETA or people left); one chunk evaluates each person once', async () => {
    await reset(imported.db)
    await configure(imported.db, scenarioConfig(rng(3)))
    const big = await jsonl('progress.jsonl', scenarioMessages(rng(3), 60))
    const env = { ...process.env, ...testEnv(imported, testQueuePrefix()), GOALPOST_IMPORT_PROGRESS_MS: '5' }
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'import', big], { env })
    expect(stdout).toMatch(/^imported .*progress\.jsonl: \d+ stored, 0 already stored, 0 invalid \(of \d+ lines\); \d+ people evaluated$/m)
    // One chunk: each person evaluated once, however many batches named them.
    const evaluated = Number(/(\d+) people evaluated/.exec(stdout)![1])
    expect(evaluated).toBe(Number((await imported.db('person_evaluations').count({ n: '*' }))[0].n))
    expect(stderr).toMatch(/^import: [\d,]+ lines, [\d,]+ lines\/s, \d+% of [\d.]+ MB read, (ETA (\d+ s|\?)|evaluating [\d,]+\/[\d,]+ people)$/m)
  }, 60_000)
})
