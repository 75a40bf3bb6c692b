import type { Knex } from 'knex'
import { loadEngineConfig } from '../db/config.ts'
import { evaluationContext, type EvaluationContext } from './evaluate.ts'
import { loadWebhooks } from '../db/webhooks.ts'
import { outboundRouting } from '../outbox/routing.ts'

export interface OutboundOptions {
  /**
   * Record conversions for Segment (GOALPOST_FORWARD_WRITE_KEY is set). When
   * not given, read from the environment, so a CLI recompute records what a
   * worker's would.
   */
  forward?: boolean
  /** Told after a commit that wrote outbox rows. */
  onOutboxWrite?: () => void
}

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
    private readonly outbound: OutboundOptions = {},
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
      const forward = this.outbound.forward ?? Boolean(process.env.GOALPOST_FORWARD_WRITE_KEY?.trim())
      const routing = outboundRouting(forward, await loadWebhooks(this.db), this.outbound.onOutboxWrite)
      this.current = evaluationContext(loaded.revision, loaded.config, routing)
      for (const listener of this.listeners) listener(loaded.revision)
    }
    this.checkedAt = Date.now()
    return this.current
  }
}
