import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import type { Config } from '../config.ts'
import { createDb } from '../db/knex.ts'
import { migrateToLatest } from '../db/migrate.ts'
import { ConfigCache } from '../jobs/config-cache.ts'
import { persistBatch } from '../jobs/persist-batch.ts'
import { analyzeNewTables } from '../db/statistics.ts'
import { normaliseMessage, type IngestMessage } from '../plugin/normalise.ts'

/** Messages persisted per transaction. */
const BATCH = 500

export interface ImportSummary {
  lines: number
  inserted: number
  duplicates: number
  invalid: number
  evaluated: number
}

/**
 * `goalpost import FILE.jsonl`: a trusted backfill of Segment messages, one
 * JSON object a line. Each message's own `receivedAt` is its processing time
 * (R1), so it is required; the people the messages touch are evaluated from
 * their whole log as each batch is stored (R3), exactly as streamed inputs
 * are. Re-importing a file changes nothing (messageId). An invalid line is
 * reported with its number and skipped.
 */
export async function importFile(
  file: string,
  config: Pick<Config, 'databaseUrl'>,
  report: (line: number, problem: string) => void,
): Promise<ImportSummary> {
  await migrateToLatest(config.databaseUrl)
  const db = createDb(config.databaseUrl, { poolMax: 2, applicationName: 'goalpost-import' })
  const summary: ImportSummary = { lines: 0, inserted: 0, duplicates: 0, invalid: 0, evaluated: 0 }
  const ctx = await new ConfigCache(db).get()
  let batch: IngestMessage[] = []
  let batches = 0
  const flush = async () => {
    if (batch.length === 0) return
    const outcome = await persistBatch(db, 'import', batch, ctx)
    // An import into a new database would otherwise read logs without statistics until autovacuum's first round.
    if (++batches % 20 === 0) await analyzeNewTables(db)
    summary.inserted += outcome.inserted
    summary.duplicates += outcome.duplicates
    summary.evaluated += outcome.evaluated
    batch = []
  }
  try {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })
    for await (const text of lines) {
      summary.lines++
      if (text.trim() === '') continue
      const problem = (message: string) => {
        summary.invalid++
        report(summary.lines, message)
      }
      let raw: unknown
      try {
        raw = JSON.parse(text)
      } catch (err) {
        problem(`not JSON: ${(err as Error).message}`)
        continue
      }
      if (typeof raw !== 'object' || raw === null || typeof (raw as { receivedAt?: unknown }).receivedAt !== 'string') {
        problem('receivedAt: is required in an import (it is the processing time, R1)')
        continue
      }
      const result = normaliseMessage(raw, { receivedAt: '', honourReceivedAt: true })
      if (!result.ok) {
        problem(result.error.message)
        continue
      }
      batch.push(result.message)
      if (batch.length >= BATCH) await flush()
    }
    await flush()
    return summary
  } finally {
    await db.destroy()
  }
}

export async function importCommand(args: string[], config: Config): Promise<number> {
  if (args.length !== 1) {
    console.error('usage: goalpost import FILE.jsonl   (Segment messages, one JSON object a line, each with its receivedAt)')
    return 1
  }
  const s = await importFile(args[0], config, (line, problem) => console.error(`${args[0]}:${line}: ${problem}`))
  console.log(
    `imported ${args[0]}: ${s.inserted} stored, ${s.duplicates} already stored, ${s.invalid} invalid (of ${s.lines} lines); ${s.evaluated} people evaluated`,
  )
  return s.invalid > 0 ? 2 : 0
}
