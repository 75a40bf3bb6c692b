import type { Knex } from 'knex'
import type { IngestMessage } from '../segment/normalise.ts'
import { configRevisionInForce, invalidateStates } from '../db/person-states.ts'
import { analyzeNewTables } from '../db/statistics.ts'
import { stagedEvent } from '../db/events.ts'
import { evaluatePeople, type EvaluationContext } from './evaluate.ts'
import { StaleConfigurationError, storeGroup } from './persist-batch.ts'

/**
 * A trusted backfill (`goalpost import`): messages are stored in large
 * set-based transactions without evaluating anyone, and each person they
 * touch is evaluated once per chunk, from their whole log, instead of after
 * every batch (which made an import quadratic in a person's history).
 *
 * Imported inputs carry their own, earlier processing times (R1), so they
 * sort before the states stored for their people: the transaction that
 * stores them also drops those states and schedules the people's wake-up
 * (invalidateStates). If the import dies before evaluating them, the
 * scheduled refresh replays them; nobody is left with a state that misses
 * an input.
 */

export interface ImportOptions {
  /** Messages per storing transaction. */
  storeBatch?: number
  /**
   * Messages stored between two evaluation rounds. Each round replays every
   * person it touched from their whole log, and an export in time order
   * touches nearly everyone in every round, so rounds are large.
   */
  chunk?: number
  /** A round also starts once this many people wait for it (memory: one entry each). */
  chunkPeople?: number
  /** ...or once its first batch was stored this long ago: well before the invalidated people's wake-up (INVALIDATED_WAKE_DELAY_MS) evaluates them in the import's stead. */
  chunkMs?: number
  /** Most people per evaluating transaction. */
  evaluateBatch?: number
  /** Most imported messages per evaluating transaction (a person's log is read whole: this bounds memory). */
  evaluateMessages?: number
  /** Evaluating transactions at once. */
  evaluateConcurrency?: number
  now?: () => number
}

export const IMPORT_DEFAULTS: Required<Omit<ImportOptions, 'now'>> = {
  storeBatch: 20_000,
  chunk: 1_000_000,
  chunkPeople: 200_000,
  chunkMs: 5 * 60_000,
  evaluateBatch: 200,
  evaluateMessages: 40_000,
  evaluateConcurrency: 2,
}

/** deadlock_detected, serialization_failure: the transaction was rolled back and may simply run again. */
const TRANSIENT_CODES = new Set(['40P01', '40001'])

export interface ImportCounts {
  inserted: number
  duplicates: number
  /** Evaluations (a person evaluated in two chunks counts twice). */
  evaluated: number
}

/** Where the import is: storing, or evaluating a round's people. */
export type ImportPhase = { step: 'storing' } | { step: 'evaluating'; done: number; total: number }

/** The configuration in force: `fresh` reads it again (after a save replaced it). */
export type ContextSource = (opts?: { fresh?: boolean }) => Promise<EvaluationContext>

/**
 * Takes messages in file order and stores them behind the caller's back: one
 * storing transaction in flight while the caller parses the next batch (the
 * persist order, R2, stays the file order), then an evaluation round every
 * `chunk` messages and at `finish()`.
 */
export class Importer {
  readonly counts: ImportCounts = { inserted: 0, duplicates: 0, evaluated: 0 }
  phase: ImportPhase = { step: 'storing' }
  private batch: IngestMessage[] = []
  /** The batch's messages as COPY lines, rendered as they come, while the previous batch is stored. */
  private staged: string[] = []
  private storing: Promise<void> = Promise.resolve()
  /** People to evaluate at the end of the round, with how many of their messages it stored. */
  private touched = new Map<string, number>()
  private sinceRound = 0
  /** performance.now() when the round's first batch was handed over. */
  private roundStartedAt: number | null = null
  private batches = 0
  private readonly opts: Required<ImportOptions>

  constructor(
    private readonly db: Knex,
    private readonly context: ContextSource,
    opts: ImportOptions = {},
  ) {
    this.opts = { ...IMPORT_DEFAULTS, now: Date.now, ...opts }
  }

  /** Takes one message; resolves when it may take the next (a batch is stored at most one behind). */
  async add(message: IngestMessage): Promise<void> {
    this.batch.push(message)
    this.staged.push(stagedEvent(message, 'import'))
    if (this.batch.length < this.opts.storeBatch) return
    const [batch, staged] = [this.batch, this.staged]
    this.batch = []
    this.staged = []
    await this.storing // a failed batch fails the import here
    this.storing = this.store(batch, staged)
    // Marked handled: the failure is thrown by the next add() or finish().
    this.storing.catch(() => {})
    this.sinceRound += batch.length
    this.roundStartedAt ??= performance.now()
    if (
      this.sinceRound >= this.opts.chunk ||
      this.touched.size >= this.opts.chunkPeople ||
      performance.now() - this.roundStartedAt >= this.opts.chunkMs
    ) {
      await this.storing
      await this.evaluateRound()
    }
  }

  /** Stores what is left and evaluates everyone still waiting for it. */
  async finish(): Promise<ImportCounts> {
    await this.storing
    const [rest, staged] = [this.batch, this.staged]
    this.batch = []
    this.staged = []
    if (rest.length > 0) await this.store(rest, staged)
    await this.evaluateRound()
    return this.counts
  }

  private async store(messages: IngestMessage[], stagedEvents: string[]): Promise<void> {
    const stored = await this.attempt((ctx) =>
      this.db.transaction(async (trx) => {
        const s = await storeGroup(trx, [{ source: 'import', messages }], ctx, { bulk: true, stagedEvents })
        await invalidateStates(trx, [...s.toEvaluate.keys()], this.opts.now())
        // As persistGroup: messages stored under a replaced configuration may
        // have been read with the wrong delivery events; store them again.
        const inForce = await configRevisionInForce(trx)
        if (inForce !== ctx.revision) throw new StaleConfigurationError(ctx.revision, inForce)
        return s
      }),
    )
    const perPerson = new Map<string, number>()
    for (const e of stored.events) perPerson.set(e.personId, (perPerson.get(e.personId) ?? 0) + 1)
    for (const id of stored.toEvaluate.keys()) this.touched.set(id, (this.touched.get(id) ?? 0) + (perPerson.get(id) ?? 1))
    this.counts.inserted += stored.events.length
    this.counts.duplicates += messages.length - stored.events.length
    // A new database has no planner statistics until autovacuum's first round.
    if (++this.batches % 5 === 0) await analyzeNewTables(this.db)
  }

  /** Evaluates the round's people from their whole logs, in groups of bounded size, a few groups at once. */
  private async evaluateRound(): Promise<void> {
    this.sinceRound = 0
    this.roundStartedAt = null
    const groups = this.groups()
    this.touched = new Map()
    const total = groups.reduce((n, g) => n + g.length, 0)
    this.phase = { step: 'evaluating', done: 0, total }
    await analyzeNewTables(this.db)
    let next = 0
    const lane = async () => {
      while (next < groups.length) {
        const ids = groups[next++]
        try {
          await this.attempt(async (ctx) => {
            const { revisionInForce } = await evaluatePeople(this.db, ids, ctx, this.opts.now(), { replay: true })
            if (revisionInForce !== ctx.revision) throw new StaleConfigurationError(ctx.revision, revisionInForce)
          })
        } catch (err) {
          next = groups.length // the other lanes stop after their current group
          throw err
        }
        this.counts.evaluated += ids.length
        if (this.phase.step === 'evaluating') this.phase.done += ids.length
      }
    }
    const lanes = await Promise.allSettled(Array.from({ length: this.opts.evaluateConcurrency }, lane))
    for (const l of lanes) if (l.status === 'rejected') throw l.reason
    this.phase = { step: 'storing' }
  }

  /** The round's people cut into groups of at most evaluateBatch people and about evaluateMessages stored messages. */
  private groups(): string[][] {
    const groups: string[][] = []
    let group: string[] = []
    let messages = 0
    for (const [id, n] of this.touched) {
      if (group.length > 0 && (group.length >= this.opts.evaluateBatch || messages + n > this.opts.evaluateMessages)) {
        groups.push(group)
        group = []
        messages = 0
      }
      group.push(id)
      messages += n
    }
    if (group.length > 0) groups.push(group)
    return groups
  }

  /**
   * Runs a transaction under the configuration in force, and again (it
   * rolled back; storing and evaluating are idempotent) if a save replaced
   * the configuration meanwhile or Postgres chose it as a deadlock or
   * serialisation victim against live ingestion, as BullMQ would retry a job.
   */
  private async attempt<T>(work: (ctx: EvaluationContext) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const ctx = await this.context(attempt === 1 ? {} : { fresh: true })
      try {
        return await work(ctx)
      } catch (err) {
        const transient = err instanceof StaleConfigurationError || TRANSIENT_CODES.has((err as { code?: string }).code ?? '')
        if (!transient || attempt >= 5) throw err
      }
    }
  }
}
