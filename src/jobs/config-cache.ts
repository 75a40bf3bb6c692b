import type { Knex } from 'knex'
import { loadEngineConfig } from '../db/config.ts'
import { evaluationContext, type EvaluationContext } from './evaluate.ts'

/**
 * The configuration in force, shared by a process's jobs. It asks Postgres
 * for the latest revision number at most every `checkEveryMs` and reloads the
 * configuration only when that changed, so every worker on every machine
 * picks up an apply within that time.
 */
export class ConfigCache {
  private current: EvaluationContext | null = null
  private checkedAt = 0
  private loading: Promise<EvaluationContext> | null = null
  private readonly listeners: Array<(revision: number) => void> = []

  constructor(
    private readonly db: Knex,
    private readonly checkEveryMs = 1_000,
  ) {}

  async get(): Promise<EvaluationContext> {
    if (this.current && Date.now() - this.checkedAt < this.checkEveryMs) return this.current
    this.loading ??= this.refresh().finally(() => {
      this.loading = null
    })
    return this.loading
  }

  /** Calls `listener` with each revision this cache loads (the first one too). */
  onRevision(listener: (revision: number) => void): void {
    this.listeners.push(listener)
  }

  /** Forgets the cached configuration (after an apply in this process). */
  invalidate(): void {
    this.checkedAt = 0
  }

  private async refresh(): Promise<EvaluationContext> {
    const [row] = await this.db('config_revisions').max({ revision: 'revision' })
    const revision = Number(row?.revision ?? 0)
    if (!this.current || this.current.revision !== revision) {
      const loaded = await loadEngineConfig(this.db)
      this.current = evaluationContext(loaded.revision, loaded.config)
      for (const listener of this.listeners) listener(loaded.revision)
    }
    this.checkedAt = Date.now()
    return this.current
  }
}
