import type { FastifyInstance } from 'fastify'
import type { Queue } from 'bullmq'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { oldestWaitingAt, queueDepth, type QueueDepth } from '../jobs/queue-status.ts'

/**
 * `GET /metrics` (CONTRACT.md): Prometheus text. Queue gauges are read from
 * Redis at scrape time, so every `serve` process reports the same shared
 * queues; counters are this process's own.
 */
export interface HttpMetrics {
  registry: Registry
  accepted: Counter<'source'>
  rejected: Counter<'source' | 'code'>
}

export function createHttpMetrics(queues: readonly Queue[]): HttpMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'goalpost_' })
  const accepted = new Counter({
    name: 'goalpost_messages_accepted_total',
    help: 'Messages accepted and queued, by source (api, webhook).',
    labelNames: ['source'] as const,
    registers: [registry],
  })
  const rejected = new Counter({
    name: 'goalpost_messages_rejected_total',
    help: 'Messages refused inside an accepted request (listed in its "rejected"), by source and error code.',
    labelNames: ['source', 'code'] as const,
    registers: [registry],
  })
  // With Redis away a scrape still answers: the queue gauges keep their last values.
  const counts = async () =>
    Promise.all(queues.map(async (q) => ({ name: q.name, counts: await queueDepth(q) }))).catch(() => [] as { name: string; counts: QueueDepth }[])
  new Gauge({
    name: 'goalpost_queue_waiting',
    help: 'Jobs waiting in each queue (an ingest job is one accepted batch).',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      for (const q of await counts()) this.set({ queue: q.name }, q.counts.waiting + q.counts.delayed)
    },
  })
  new Gauge({
    name: 'goalpost_queue_active',
    help: 'Jobs being processed in each queue.',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      for (const q of await counts()) this.set({ queue: q.name }, q.counts.active)
    },
  })
  new Gauge({
    name: 'goalpost_queue_failed',
    help: 'Jobs parked as failed in each queue (kept a week for inspection and retry).',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      for (const q of await counts()) this.set({ queue: q.name }, q.counts.failed)
    },
  })
  const ingest = queues[0]
  new Gauge({
    name: 'goalpost_evaluation_lag_seconds',
    help: 'Age of the oldest ingest batch not yet taken by a worker: evaluation runs with the batch, so inputs are judged at most this late.',
    registers: [registry],
    async collect() {
      const oldest = ingest ? await oldestWaitingAt(ingest).catch(() => undefined) : null
      if (oldest === undefined) return // Redis away: keep the last value
      this.set(oldest === null ? 0 : Math.max(0, (Date.now() - oldest) / 1000))
    },
  })
  return { registry, accepted, rejected }
}

export function registerMetricsRoute(app: FastifyInstance, metrics: HttpMetrics) {
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })
}
