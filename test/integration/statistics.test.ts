import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { analyzeNewTables } from '../../src/db/statistics.ts'
import { emptyContext } from '../../src/jobs/evaluate.ts'
import { persistBatch } from '../../src/jobs/persist-batch.ts'
import type { IngestMessage } from '../../src/segment/normalise.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { waitFor } from '../helpers/wait.ts'

// A new database has no planner statistics until autovacuum's first round;
// the scheduled wake-up (and `goalpost import`) analyze such tables at once.

let database: TestDatabase
beforeAll(async () => {
  database = await createTestDatabase()
})
afterAll(async () => {
  await database?.drop()
})

const lastAnalyze = async (table: string) =>
  (await database.db('pg_stat_user_tables').where({ relname: table }).first('last_analyze', 'last_autoanalyze')) as {
    last_analyze: Date | null
    last_autoanalyze: Date | null
  }

describe('analyzeNewTables', () => {
  it('leaves a table alone until enough has changed', async () => {
    expect(await analyzeNewTables(database.db)).toEqual([])
  })

  it('analyzes a table that changed by at least minChanges rows and was never analyzed, once', async () => {
    const messages: IngestMessage[] = Array.from({ length: 1_200 }, (_, i) => ({
      messageId: `stat-${i}`,
      type: 'track',
      name: 'Product Viewed',
      userId: `u${i % 300}`,
      anonymousId: null,
      properties: { sku: i },
      meta: null,
      context: null,
      receivedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      timestamp: null,
    }))
    await persistBatch(database.db, 'import', messages, emptyContext())
    const before = await lastAnalyze('events')
    if (before.last_autoanalyze !== null) {
      // Autovacuum was quicker: the table has statistics, so it is left alone.
      expect(await analyzeNewTables(database.db)).not.toContain('events')
      return
    }
    expect(before.last_analyze).toBeNull()
    // The activity statistics reach pg_stat_user_tables within about a second.
    const analyzed = await waitFor(async () => {
      const tables = await analyzeNewTables(database.db)
      return tables.includes('events') ? tables : null
    }, { what: 'events analyzed', timeoutMs: 15_000 })
    expect(analyzed).not.toContain('people') // 300 people: under the threshold
    await waitFor(async () => (await lastAnalyze('events')).last_analyze !== null, { what: 'last_analyze recorded' })
    expect(await analyzeNewTables(database.db)).not.toContain('events')
  })
})
