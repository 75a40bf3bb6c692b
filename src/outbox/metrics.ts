import type { Knex } from 'knex'
import { Gauge, type Registry } from 'prom-client'
import { outboxStatus } from './store.ts'

/**
 * Outbox figures for `/metrics` (docs/outbound.md), read from Postgres at
 * scrape time, so any `serve` process reports what every worker did. The
 * `_total` series are counters kept in `outbox_counters` (exposed as gauges
 * because their value comes from the database, not from this process).
 */
export function registerOutboxMetrics(registry: Registry, db: Knex): void {
  let last: Promise<Awaited<ReturnType<typeof outboxStatus>> | null> | null = null
  // One query per scrape, shared by the gauges; Postgres away: the gauges keep their last values.
  const status = () => {
    last ??= outboxStatus(db)
      .catch(() => null)
      .finally(() => setImmediate(() => (last = null)))
    return last
  }
  const gauge = (name: string, help: string, set: (g: Gauge<'destination'>, s: NonNullable<Awaited<ReturnType<typeof outboxStatus>>>) => void) =>
    new Gauge({
      name,
      help,
      labelNames: ['destination'] as const,
      registers: [registry],
      async collect() {
        const s = await status()
        if (!s) return
        this.reset()
        set(this, s)
      },
    })
  gauge('goalpost_outbox_pending', 'Outbound changes waiting to be sent (or retried), by destination.', (g, s) => {
    for (const p of s.pending) g.set({ destination: p.destination }, p.pending)
  })
  gauge('goalpost_outbox_oldest_pending_seconds', 'Age of the oldest change still waiting, by destination.', (g, s) => {
    for (const p of s.pending) g.set({ destination: p.destination }, p.oldestAgeSeconds ?? 0)
  })
  gauge('goalpost_outbox_refused', 'Changes refused for good and kept (GET /admin/outbox; retry with POST /admin/outbox/retry).', (g, s) => {
    for (const p of s.pending) g.set({ destination: p.destination }, p.refused)
  })
  gauge('goalpost_outbox_sent_total', 'Changes delivered since the outbox was created, by destination.', (g, s) => {
    for (const c of s.counters) g.set({ destination: c.destination }, c.sent)
  })
  gauge('goalpost_outbox_failed_total', 'Failed attempts (retried or refused) since the outbox was created, by destination.', (g, s) => {
    for (const c of s.counters) g.set({ destination: c.destination }, c.failed)
  })
}
