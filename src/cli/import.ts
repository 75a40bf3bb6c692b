import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import type { Config } from '../config.ts'
import { createDb } from '../db/knex.ts'
import { migrateToLatest } from '../db/migrate.ts'
import { ConfigCache } from '../jobs/config-cache.ts'
import { Importer, type ImportOptions } from '../jobs/import-messages.ts'
import { normaliseMessage } from '../segment/normalise.ts'
import { progressDisplay, type ImportProgress } from './import-progress.ts'
import { CommandError } from './user-errors.ts'

export interface ImportSummary {
  lines: number
  inserted: number
  duplicates: number
  invalid: number
  evaluated: number
}

export interface ImportFileOptions extends ImportOptions {
  /** Called every `progressEveryMs` while the import runs, the first time after as long. */
  onProgress?: (p: ImportProgress) => void
  progressEveryMs?: number
}

/** Progress every 3 s unless GOALPOST_IMPORT_PROGRESS_MS says otherwise: a file that takes longer than that shows it. */
export const PROGRESS_EVERY_MS = 3_000

/**
 * `goalpost import FILE.jsonl`: a trusted backfill of Segment messages, one
 * JSON object a line. Each message's own `receivedAt` is its processing time
 * (R1), so it is required. Messages are stored in large set-based
 * transactions and every person they touch is evaluated from their whole
 * log once per chunk (src/jobs/import-messages.ts), with the same result as
 * if the messages had streamed in (R3). Re-importing a file changes nothing
 * (messageId). An invalid line is reported with its number and skipped.
 */
export async function importFile(
  file: string,
  config: Pick<Config, 'databaseUrl'>,
  report: (line: number, problem: string) => void,
  opts: ImportFileOptions = {},
): Promise<ImportSummary> {
  await migrateToLatest(config.databaseUrl)
  // One storing transaction and evaluateConcurrency evaluating ones at most, plus the configuration's reads.
  const db = createDb(config.databaseUrl, { poolMax: (opts.evaluateConcurrency ?? 2) + 1, applicationName: 'goalpost-import' })
  const summary: ImportSummary = { lines: 0, inserted: 0, duplicates: 0, invalid: 0, evaluated: 0 }
  const started = Date.now()
  const totalBytes = (await stat(file)).size
  const input = createReadStream(file, 'utf8')
  const configs = new ConfigCache(db)
  const importer = new Importer(db, (o) => (o?.fresh && configs.invalidate(), configs.get()), opts)
  const { onProgress } = opts
  const tick = onProgress
    ? setInterval(
        () => onProgress({ lines: summary.lines, bytes: input.bytesRead, totalBytes, elapsedMs: Date.now() - started, phase: importer.phase }),
        opts.progressEveryMs ?? PROGRESS_EVERY_MS,
      )
    : null
  try {
    const lines = createInterface({ input, crlfDelay: Infinity })
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
      await importer.add(result.message)
    }
    const counts = await importer.finish()
    return { ...summary, ...counts }
  } finally {
    if (tick) clearInterval(tick)
    input.destroy()
    await db.destroy()
  }
}

/** `goalpost import FILE [--json]`: exit 0, or 2 when some lines were invalid (each listed on stderr). */
export async function importCommand(file: string, config: Config, opts: { json?: boolean } = {}): Promise<number> {
  const args = [file]
  // Before anything is migrated or connected: a wrong path is the likeliest mistake.
  if (!(await stat(file)).isFile()) throw new CommandError(`${file} is not a file`)
  const every = Number(process.env.GOALPOST_IMPORT_PROGRESS_MS)
  const progress = progressDisplay(process.stderr)
  let s: ImportSummary
  try {
    s = await importFile(args[0], config, (line, problem) => progress.log(`${args[0]}:${line}: ${problem}`), {
      onProgress: (p) => progress.update(p),
      progressEveryMs: Number.isInteger(every) && every > 0 ? every : PROGRESS_EVERY_MS,
    })
  } finally {
    progress.stop()
  }
  if (opts.json) console.log(JSON.stringify({ file, ...s }))
  else console.log(
    `imported ${args[0]}: ${s.inserted} stored, ${s.duplicates} already stored, ${s.invalid} invalid (of ${s.lines} lines); ${s.evaluated} people evaluated`,
  )
  return s.invalid > 0 ? 2 : 0
}
