/** What one item of a group came to: its value, or the error that is its alone. */
export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown }

export interface GroupCommitOptions<T> {
  /** An item's size (messages); a group holds at most `maxWeight`, and always at least one item. */
  weight: (item: T) => number
  maxWeight: number
  /** Groups running at once. */
  maxInFlight: number
}

/**
 * Group commit: items submitted while every slot is busy wait together and
 * run as one group (one transaction) when a slot frees up. An idle committer
 * runs an item at once (on the next turn of the event loop, so items that
 * arrive together go together), so batching costs no latency at low load and
 * grows with the load, up to `maxWeight` per group.
 *
 * `run` answers for each item of the group in order; if it throws, every
 * item of the group fails with that error.
 */
export class GroupCommitter<T, R> {
  readonly #waiting: { item: T; resolve: (value: R) => void; reject: (error: unknown) => void }[] = []
  #inFlight = 0
  #scheduled = false

  constructor(
    private readonly run: (items: T[]) => Promise<Settled<R>[]>,
    private readonly opts: GroupCommitOptions<T>,
  ) {}

  /** Items waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length
  }

  /**
   * Runs `item` in a group and settles with its result. Aborting `signal`
   * while the item still waits takes it out (it will not run) and rejects
   * with the signal's reason; once its group runs, aborting changes nothing.
   */
  submit(item: T, signal?: AbortSignal): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      const entry = { item, resolve, reject }
      this.#waiting.push(entry)
      signal?.addEventListener(
        'abort',
        () => {
          const at = this.#waiting.indexOf(entry)
          if (at === -1) return // already running
          this.#waiting.splice(at, 1)
          reject(signal.reason)
        },
        { once: true },
      )
      this.#schedule()
    })
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#pump()
    })
  }

  #pump(): void {
    while (this.#inFlight < this.opts.maxInFlight && this.#waiting.length > 0) {
      let weight = this.opts.weight(this.#waiting[0].item)
      let take = 1
      while (take < this.#waiting.length) {
        const next = this.opts.weight(this.#waiting[take].item)
        if (weight + next > this.opts.maxWeight) break
        weight += next
        take++
      }
      const group = this.#waiting.splice(0, take)
      this.#inFlight++
      this.run(group.map((g) => g.item))
        .then(
          (results) => {
            if (results.length !== group.length) throw new Error(`group commit: ${results.length} results for ${group.length} items`)
            group.forEach((g, i) => {
              const r = results[i]
              if (r.ok) g.resolve(r.value)
              else g.reject(r.error)
            })
          },
        )
        .catch((error: unknown) => {
          for (const g of group) g.reject(error)
        })
        .finally(() => {
          this.#inFlight--
          this.#pump()
        })
    }
  }
}
