import type { Queue } from 'bullmq'
import type { MaintenanceJobData } from './queues.ts'

/** What `/metrics` and `goalpost status` tell of a queue, read from Redis. */
export interface QueueDepth {
  waiting: number
  active: number
  /** Waiting for a later time: retries in backoff, the next scheduled wake-up. */
  delayed: number
  /** Parked after their attempts ran out (kept a week for inspection and retry). */
  failed: number
}

export async function queueDepth(queue: Queue): Promise<QueueDepth> {
  const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed')
  return { waiting: c.waiting ?? 0, active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 }
}

/** When the oldest job still waiting for a worker was queued (epoch ms), or null when none waits. */
export async function oldestWaitingAt(queue: Queue): Promise<number | null> {
  const [oldest] = await queue.getJobs(['waiting'], 0, 0, true)
  return oldest ? oldest.timestamp : null
}

export interface WakeSchedule {
  /** When the scheduler queues the next wake-up (epoch ms); null: no scheduler (no worker has ever run). */
  nextAt: number | null
  /** The last wake-up that finished (among the last 100 maintenance jobs kept), and how many people it evaluated. */
  last: { finishedAt: number; woken: number | null } | null
}

/** The scheduled wake-up (R22, R23: src/jobs/wake.ts), as the maintenance queue knows it. */
export async function wakeSchedule(maintenance: Queue<MaintenanceJobData>): Promise<WakeSchedule> {
  const scheduler = await maintenance.getJobScheduler('wake')
  // Newest first; recomputes share the queue, so look a little further than one.
  const recent = await maintenance.getJobs(['completed'], 0, 19, false)
  const last = recent.find((j) => j.name === 'wake' && j.finishedOn)
  const woken = (last?.returnvalue as { woken?: unknown } | undefined)?.woken
  return {
    nextAt: scheduler?.next ?? null,
    last: last ? { finishedAt: last.finishedOn!, woken: typeof woken === 'number' ? woken : null } : null,
  }
}
