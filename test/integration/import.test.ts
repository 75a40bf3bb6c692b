import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { importFile } from '../../src/cli/import.ts'
import { validateConfigDocument } from '../../src/core/config-document/index.ts'
import { applyConfig } from '../../src/db/config.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { testEnv } from '../helpers/goalpost.ts'
import { testQueuePrefix } from '../helpers/redis.ts'

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
let dir: string
let file: string
beforeAll(async () => {
  database = await createTestDatabase()
  const validated = validateConfigDocument(CONFIG)
  if (!validated.ok) throw new Error(validated.errors.join('\n'))
  await applyConfig(database.db, validated.document, { now: new Date('2026-01-01T00:00:00Z'), source: 'test', raw: CONFIG })
  dir = await mkdtemp(path.join(os.tmpdir(), 'goalpost-import-'))
  file = path.join(dir, 'backfill.jsonl')
  await writeFile(file, LINES.join('\n') + '\n')
})
afterAll(async () => {
  await database?.drop()
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
