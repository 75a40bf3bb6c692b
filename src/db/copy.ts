import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Knex } from 'knex'
import type pg from 'pg'
import copyStreams from 'pg-copy-streams'

/**
 * COPY ... FROM STDIN in text format, for bulk writers (import): Postgres
 * reads COPY rows far faster than it parses the same values out of array
 * parameters, and building the text costs the client a fraction of what
 * node-postgres spends escaping array elements.
 */

const SPECIAL = /[\\\t\n\r]/
const SPECIALS = /[\\\t\n\r]/g
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' }

/** A text value as a COPY text field (null: `\N`). */
export function copyText(value: string | null): string {
  if (value === null) return '\\N'
  return SPECIAL.test(value) ? value.replace(SPECIALS, (c) => ESCAPES[c]) : value
}

/** A JSON value as a COPY text field for a json/jsonb column (null: `\N`). JSON text has no raw tab or newline: only backslashes need doubling. */
export function copyJson(value: unknown): string {
  if (value === null || value === undefined) return '\\N'
  const json = JSON.stringify(value)
  return json.includes('\\') ? json.replace(/\\/g, '\\\\') : json
}

/**
 * Sends `rows` (COPY text lines, each ending in a newline) through
 * `COPY <target> FROM STDIN` on the transaction's own connection.
 */
export async function copyInto(trx: Knex.Transaction, target: string, rows: readonly string[]): Promise<void> {
  // Inside a transaction knex hands out the transaction's connection.
  const conn = (await trx.client.acquireConnection()) as pg.Client
  const stream = conn.query(copyStreams.from(`COPY ${target} FROM STDIN`))
  // About 1 MB a write: few chunks, and no single string of the whole batch.
  async function* chunks() {
    let chunk = ''
    for (const row of rows) {
      chunk += row
      if (chunk.length >= 1 << 20) {
        yield chunk
        chunk = ''
      }
    }
    if (chunk.length > 0) yield chunk
  }
  await pipeline(Readable.from(chunks()), stream)
}

/**
 * unnestRows for a large batch: the rows go by COPY into a session-local
 * staging table `table` (created on first use, emptied at each commit),
 * which the statement reads as `alias`. Values are text as Postgres reads
 * them (a jsonb column takes its JSON text); null and undefined are NULL.
 */
export async function stageRows(
  trx: Knex.Transaction,
  table: string,
  alias: string,
  columns: readonly string[],
  types: Readonly<Record<string, string>>,
  rows: Iterable<Record<string, unknown>>,
): Promise<[string, Knex.RawBinding[]]> {
  await trx.raw(`CREATE TEMP TABLE IF NOT EXISTS ${table} (${columns.map((c) => `${c} ${types[c]}`).join(', ')}) ON COMMIT DELETE ROWS`)
  const lines: string[] = []
  for (const row of rows) lines.push(columns.map((c) => copyText(row[c] === null || row[c] === undefined ? null : String(row[c]))).join('\t') + '\n')
  await copyInto(trx, table, lines)
  return [`${table} ${alias}`, []]
}
