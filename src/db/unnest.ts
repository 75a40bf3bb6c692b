import type { Knex } from 'knex'

/**
 * `unnest(?::t1[], ?::t2[], …) AS alias(c1, c2, …)` over rows, with its
 * bindings (one array per column). For joins (UPDATE … FROM, DELETE … USING):
 * the planner knows how many rows unnest gives (it estimates any
 * jsonb_to_recordset at 100), so it probes the table's index instead of
 * hashing a sequential scan of it.
 */
export function unnestRows(
  alias: string,
  columns: readonly string[],
  types: Readonly<Record<string, string>>,
  rows: readonly Record<string, unknown>[],
): [string, Knex.RawBinding[]] {
  return [
    `unnest(${columns.map((c) => `?::${types[c]}[]`).join(', ')}) AS ${alias}(${columns.join(', ')})`,
    columns.map((c) => rows.map((r) => (r[c] === undefined ? null : r[c]))) as Knex.RawBinding[],
  ]
}
