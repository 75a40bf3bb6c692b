import type { Config } from '../config.ts'
import type { Knex } from '../db/knex.ts'
import { listRejected, type RejectedFilter } from '../db/rejected.ts'
import { IngestProducer, createIngestQueue } from '../jobs/queues.ts'
import { createRedis, waitUntilReady } from '../jobs/redis.ts'
import { rejectedJson, replayRejected, type ReplaySummary } from '../jobs/replay-rejected.ts'
import { migrationHint, openDb } from './connect.ts'


interface FilterOptions {
  reason?: string
  since?: Date
}

async function connect(config: Pick<Config, 'databaseUrl'>, name: string): Promise<Knex> {
  const db = await openDb(config.databaseUrl, name)
  try {
    await db.raw('SELECT replayed_at FROM rejected_messages LIMIT 0')
  } catch (err) {
    await db.destroy()
    throw migrationHint(err, config.databaseUrl)
  }
  return db
}

/** `goalpost rejected list [--reason R] [--since T] [--all] [--limit N] [--json]` */
export async function rejectedListCommand(config: Config, opts: FilterOptions & { all?: boolean; limit?: number; json?: boolean }): Promise<number> {
  const db = await connect(config, 'rejected')
  try {
    const filter: RejectedFilter = { reason: opts.reason, since: opts.since, includeReplayed: opts.all }
    const { total, rows } = await listRejected(db, filter, opts.limit ?? 100)
    if (opts.json) {
      console.log(JSON.stringify({ total, messages: rows.map(rejectedJson) }))
      return 0
    }
    console.log(`${total} rejected message${total === 1 ? '' : 's'}${opts.all ? '' : ' not replayed yet'}${rows.length < total ? ` (the first ${rows.length} shown; --limit for more)` : ''}`)
    for (const r of rows)
      console.log(
        `  #${r.id}  ${r.rejectedAt}  ${r.source.padEnd(7)}  ${r.messageId ?? '(no messageId)'}${r.replayedAt ? `  replayed ${r.replayedAt}` : ''}\n      ${r.reason}`,
      )
    return 0
  } finally {
    await db.destroy()
  }
}

export function describeReplay(s: ReplaySummary): string {
  const lines = [
    `${s.dry_run ? 'dry run: would queue' : 'queued'} ${s.queued} of ${s.matched} rejected message${s.matched === 1 ? '' : 's'} again; ${s.already_stored} already stored; ${s.still_invalid} still invalid`,
    ...s.invalid.map((i) => `  #${i.id} ${i.message_id ?? '(no messageId)'}: ${i.reason}`),
  ]
  if (!s.dry_run && s.queued > 0) lines.push('the workers store them as they go; one Postgres refuses again is listed again with its new reason')
  return lines.join('\n')
}

/** `goalpost rejected replay [--reason R] [--since T] [--dry-run] [--json]` */
export async function rejectedReplayCommand(config: Config, opts: FilterOptions & { dryRun?: boolean; json?: boolean }): Promise<number> {
  const db = await connect(config, 'replay')
  const redis = opts.dryRun ? null : createRedis(config.redisUrl, 'producer', config.queuePrefix)
  try {
    let producer: IngestProducer | null = null
    if (redis) {
      await waitUntilReady(redis, 5_000)
      producer = new IngestProducer(createIngestQueue(redis, config.queuePrefix))
    }
    const summary = await replayRejected(db, producer, { reason: opts.reason, since: opts.since }, { dryRun: opts.dryRun })
    console.log(opts.json ? JSON.stringify(summary) : describeReplay(summary))
    await producer?.queue.close()
    return 0
  } finally {
    redis?.disconnect()
    await db.destroy()
  }
}
