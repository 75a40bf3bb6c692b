import type { Knex } from 'knex'
import type { IngestMessage } from '../segment/normalise.ts'
import { copyInto, copyJson, copyText } from './copy.ts'

export type Source = 'api' | 'webhook' | 'plugin' | 'import'

export interface PersistedEvent {
  message: IngestMessage
  /** The message's position in the messages given to insertEvents (its first copy's). */
  index: number
  seq: number
  personId: string
  /** The person's row was created by this statement: they had no input before. */
  newPerson: boolean
}

/** The id a message is about before identity links: its userId, else anonymousId. */
export const rawPersonId = (m: IngestMessage): string => (m.userId ?? m.anonymousId) as string

/**
 * Appends messages to the log in batch order (R2: seq is the persist order).
 * A messageId already in the log is skipped, so only the returned events are
 * new; the person is resolved through identity links (R25) and gets a
 * `people` row if it has none (then `newPerson`: every input of theirs is
 * among these; a merge moves inputs only to a person who has a row). `sources[i]` is where message i came from.
 */
export async function insertEvents(
  trx: Knex.Transaction,
  sources: readonly Source[],
  messages: readonly IngestMessage[],
): Promise<PersistedEvent[]> {
  // Column arrays zipped by ROWS FROM, not one JSON document of rows: Postgres
  // parses a text[] far faster than it builds jsonb for every row's keys
  // (about a third of the statement's time went to that), and unnest() tells
  // the planner how many rows there are. Only the jsonb columns travel as
  // JSON, one array each (a null comes back as JSON null: nullif).
  const column = <T>(f: (m: IngestMessage) => T) => messages.map(f)
  const { rows: inserted } = await trx.raw<{ rows: InsertedRow[] }>(
    insertStatement(
      `ROWS FROM (unnest(?::text[]), unnest(?::text[]), unnest(?::text[]), unnest(?::text[]), unnest(?::text[]),
                  unnest(?::text[]), jsonb_array_elements(?::jsonb), jsonb_array_elements(?::jsonb),
                  jsonb_array_elements(?::jsonb), unnest(?::timestamptz[]), unnest(?::timestamptz[]),
                  unnest(?::text[]))
       WITH ORDINALITY AS r(message_id, raw_id, user_id, anonymous_id, type, name, properties, meta, context,
                            received_at, sent_timestamp, source, i)`,
      // A null comes back from jsonb_array_elements as JSON null.
      { meta: `nullif(r.meta, 'null'::jsonb)`, context: `nullif(r.context, 'null'::jsonb)` },
    ),
    [
      column((m) => m.messageId),
      column(rawPersonId),
      column((m) => m.userId),
      column((m) => m.anonymousId),
      column((m) => m.type),
      column((m) => m.name),
      JSON.stringify(column((m) => m.properties)),
      JSON.stringify(column((m) => m.meta)),
      JSON.stringify(column((m) => m.context)),
      column((m) => m.receivedAt),
      column((m) => m.timestamp),
      [...sources],
    ] as Knex.RawBinding[],
  )
  return persisted(messages, inserted)
}

/** The staging table's COPY columns (its `i` numbers the rows in COPY order). */
const STAGED_COLUMNS = 'message_id, raw_id, user_id, anonymous_id, type, name, properties, meta, context, received_at, sent_timestamp, source'

/**
 * A message as one line of COPY text for insertEventsBulk: an importer
 * renders it while the previous batch is still being stored, off the path
 * of the storing transaction.
 */
export function stagedEvent(m: IngestMessage, source: Source): string {
  return (
    `${copyText(m.messageId)}\t${copyText(rawPersonId(m))}\t${copyText(m.userId)}\t${copyText(m.anonymousId)}\t${m.type}\t` +
    `${copyText(m.name)}\t${copyJson(m.properties)}\t${copyJson(m.meta)}\t${copyJson(m.context)}\t${m.receivedAt}\t${m.timestamp ?? '\\N'}\t${source}\n`
  )
}

/**
 * insertEvents for a large batch (import): the rows reach Postgres by COPY
 * into a session-local staging table, then one INSERT ... SELECT does what
 * insertEvents' statement does, with the same result. The staging table is
 * emptied at commit (and by a rollback), so it never holds a row between
 * batches. `staged[i]`: stagedEvent of message i, if the caller rendered it.
 */
export async function insertEventsBulk(
  trx: Knex.Transaction,
  sources: readonly Source[],
  messages: readonly IngestMessage[],
  staged?: readonly string[],
): Promise<PersistedEvent[]> {
  if (messages.length === 0) return []
  // The INSERT sorts the staged rows (jsonb and all) by i, about 10 MB for an
  // import batch, which the default work_mem (4 MB) sorts on disk: an
  // external merge took about 40 % of the statement. This transaction only.
  await trx.raw(`SET LOCAL work_mem = '64MB'`)
  await trx.raw(
    `CREATE TEMP TABLE IF NOT EXISTS goalpost_staged_events (
       i bigint GENERATED ALWAYS AS IDENTITY, message_id text, raw_id text, user_id text, anonymous_id text, type text,
       name text, properties jsonb, meta jsonb, context jsonb, received_at timestamptz, sent_timestamp timestamptz, source text
     ) ON COMMIT DELETE ROWS`,
  )
  await copyInto(trx, `goalpost_staged_events (${STAGED_COLUMNS})`, staged ?? messages.map((m, i) => stagedEvent(m, sources[i])))
  const { rows: inserted } = await trx.raw<{ rows: InsertedRow[] }>(insertStatement('goalpost_staged_events r', { meta: 'r.meta', context: 'r.context' }))
  return persisted(messages, inserted)
}

type InsertedRow = { message_id: string; seq: number; person_id: string; new_person: boolean }

/**
 * The one statement that appends to the log, whatever `from` the rows come
 * from (bound arrays, or the import's staging table): each row's person
 * through identity links (R25), in row order `r.i` (R2: seq is persist
 * order), messageIds already stored skipped, and the people the new events
 * belong to get their row (sorted, so concurrent batches take the row locks
 * in one order).
 */
function insertStatement(from: string, json: { meta: string; context: string }): string {
  return `WITH ins AS (
       INSERT INTO events (message_id, person_id, user_id, anonymous_id, type, name, properties, meta, context,
                           received_at, sent_timestamp, source)
       SELECT r.message_id, coalesce(l.person_id, r.raw_id), r.user_id, r.anonymous_id, r.type, r.name,
              r.properties, ${json.meta}, ${json.context}, r.received_at, r.sent_timestamp, r.source
         FROM ${from}
         LEFT JOIN identity_links l ON l.anonymous_id = r.raw_id
        ORDER BY r.i
       ON CONFLICT (message_id) DO NOTHING
       RETURNING message_id, seq, person_id
     ), new_people AS (
       INSERT INTO people (person_id) SELECT DISTINCT person_id FROM ins ORDER BY 1 ON CONFLICT DO NOTHING
       RETURNING person_id
     )
     SELECT message_id, seq, person_id, person_id IN (SELECT person_id FROM new_people) AS new_person FROM ins`
}

/** The inserted rows matched to their messages, in seq order. */
function persisted(messages: readonly IngestMessage[], inserted: readonly InsertedRow[]): PersistedEvent[] {
  // A messageId twice in one batch: the statement stores the first copy, so
  // the first copy is the one whose effects (traits, lifecycle) apply.
  const byId = new Map<string, number>()
  messages.forEach((m, i) => {
    if (!byId.has(m.messageId)) byId.set(m.messageId, i)
  })
  return inserted
    .map((r) => {
      const index = byId.get(r.message_id)!
      return { message: messages[index], index, seq: r.seq, personId: r.person_id, newPerson: r.new_person }
    })
    .sort((a, b) => a.seq - b.seq)
}

/** The person locks each open transaction holds (advisory xact locks last until it ends). */
const heldLocks = new WeakMap<Knex.Transaction, Set<string>>()

function held(trx: Knex.Transaction): Set<string> {
  let ids = heldLocks.get(trx)
  if (!ids) heldLocks.set(trx, (ids = new Set()))
  return ids
}

/**
 * Serialises ingestion per person: every transaction that writes a person's
 * rows first takes these transaction-scoped advisory locks, in a fixed order
 * so that two batches never deadlock on them. Ids the transaction has locked
 * already cost nothing (no statement when all are held).
 */
export async function lockPeople(trx: Knex.Transaction, ids: Iterable<string>): Promise<void> {
  const have = held(trx)
  const list = [...new Set(ids)].filter((id) => !have.has(id))
  if (list.length === 0) return
  await trx.raw(
    `SELECT pg_advisory_xact_lock(k)
       FROM (SELECT DISTINCT hashtextextended(id, 0) AS k FROM unnest(?::text[]) AS id ORDER BY 1) AS keys`,
    [list],
  )
  for (const id of list) have.add(id)
}

/**
 * Locks the ids messages name and the people those ids belong to now (R25):
 * a message naming a linked anonymousId writes its person's rows (events,
 * traits, deliveries), so it takes that person's lock like every other writer,
 * and evaluation, which locks people by their person id, never interleaves
 * with it. One round trip: goalpost_lock_named_people (migration 000500)
 * reads the links again after each round of locks until they hold still.
 */
export async function lockNamedPeople(trx: Knex.Transaction, ids: Iterable<string>): Promise<void> {
  const named = [...new Set(ids)]
  if (named.length === 0) return
  const { rows } = await trx.raw<{ rows: { id: string }[] }>(`SELECT id FROM goalpost_lock_named_people(?::text[]) AS id`, [named])
  const have = held(trx)
  for (const r of rows) have.add(r.id)
}
