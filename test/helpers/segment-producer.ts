/**
 * The real `@segment/analytics-node` client as a paced producer, keeping
 * count of what goalpost acknowledged: a call is acknowledged when its
 * callback reports no error (its batch got a 2xx). A call the library gave
 * up on (its retries used up) is sent again with the same messageId, as an
 * application honouring the callback would, until goalpost takes it.
 */
import { Analytics } from '@segment/analytics-node'
import type { Call } from './fault-workload.ts'

export class SegmentProducer {
  readonly acked = new Set<string>()
  /** Message ids handed to the library so far (first sends). */
  readonly issued: string[] = []
  /** Calls made, first sends and re-sends. */
  calls = 0
  /** Calls the library reported failed (then re-sent). */
  failures = 0
  /** HTTP answers by status (a refused connection gets none). */
  readonly statuses = new Map<number, number>()
  #issued = 0
  #total = 0
  readonly #waiters: { at: number; resolve: () => void }[] = []
  readonly analytics: Analytics

  constructor(host: string, writeKey: string) {
    this.analytics = new Analytics({ writeKey, host, flushAt: 50, flushInterval: 50, maxRetries: 6, httpRequestTimeout: 5_000 })
    this.analytics.on('http_response', (r) => this.statuses.set(r.status, (this.statuses.get(r.status) ?? 0) + 1))
  }

  /** Resolves once this share of the workload's first sends has been made. */
  reached(fraction: number): Promise<void> {
    return new Promise((resolve) => {
      const at = Math.ceil(fraction * this.#total)
      if (this.#total > 0 && this.#issued >= at) resolve()
      else this.#waiters.push({ at, resolve })
    })
  }

  #send(call: Call): Promise<boolean> {
    this.calls++
    return new Promise((resolve) => {
      const done = (err?: unknown) => {
        if (err) this.failures++
        else this.acked.add(call.params.messageId)
        resolve(!err)
      }
      if (call.kind === 'track') this.analytics.track(call.params, done)
      else this.analytics.identify(call.params, done)
    })
  }

  /**
   * Sends each phase at `perSecond`, in ticks of 50 ms; a phase starts once
   * every call of the one before is acknowledged.
   */
  async run(phases: Call[][], perSecond: number, { maxRounds = 30 } = {}): Promise<void> {
    this.#total = phases.reduce((n, p) => n + p.length, 0)
    const perTick = Math.max(1, Math.round(perSecond / 20))
    for (const phase of phases) {
      let pending: Promise<boolean>[] = []
      for (let i = 0; i < phase.length; i += perTick) {
        for (const call of phase.slice(i, i + perTick)) {
          this.issued.push(call.params.messageId)
          pending.push(this.#send(call))
        }
        this.#issued += Math.min(perTick, phase.length - i)
        for (const w of this.#waiters.filter((w) => this.#issued >= w.at)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1)
          w.resolve()
        }
        await new Promise((r) => setTimeout(r, 50))
      }
      let calls = phase
      for (let round = 1; ; round++) {
        const ok = await Promise.all(pending)
        calls = calls.filter((_, i) => !ok[i])
        if (calls.length === 0) break
        if (round >= maxRounds) throw new Error(`${calls.length} calls still refused after ${maxRounds} rounds of re-sending`)
        await new Promise((r) => setTimeout(r, 1_000))
        pending = calls.map((call) => this.#send(call))
      }
    }
  }

  async close(): Promise<void> {
    await this.analytics.closeAndFlush({ timeout: 10_000 })
  }
}
