import { describe, expect, it } from 'vitest'
import { GroupCommitter, type Settled } from '../../src/jobs/group-commit.ts'

/** A run that records its groups and holds each until released. */
function recorder() {
  const groups: number[][] = []
  const releases: (() => void)[] = []
  const run = async (items: number[]): Promise<Settled<string>[]> => {
    groups.push(items)
    await new Promise<void>((resolve) => releases.push(resolve))
    return items.map((i) => (i < 0 ? { ok: false, error: new Error(`bad ${i}`) } : { ok: true, value: `done ${i}` }))
  }
  return { groups, releases, run }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('GroupCommitter (group commit of queued batches)', () => {
  it('runs an item at once when idle, and groups what arrives while a slot is busy', async () => {
    const r = recorder()
    const gc = new GroupCommitter(r.run, { weight: () => 1, maxWeight: 10, maxInFlight: 1 })
    const first = gc.submit(1)
    await tick()
    expect(r.groups).toEqual([[1]])
    const rest = [2, 3, 4].map((i) => gc.submit(i))
    await tick()
    expect(gc.waiting).toBe(3)
    r.releases[0]()
    expect(await first).toBe('done 1')
    await tick()
    expect(r.groups).toEqual([[1], [2, 3, 4]])
    r.releases[1]()
    expect(await Promise.all(rest)).toEqual(['done 2', 'done 3', 'done 4'])
  })

  it('keeps a group under maxWeight, but never leaves a heavy item behind', async () => {
    const r = recorder()
    const gc = new GroupCommitter(r.run, { weight: (i) => i, maxWeight: 10, maxInFlight: 1 })
    const all = [6, 4, 20, 3].map((i) => gc.submit(i))
    for (let n = 0; n < 3; n++) {
      await tick()
      r.releases[n]()
      await tick()
    }
    await Promise.all(all)
    expect(r.groups).toEqual([[6, 4], [20], [3]])
  })

  it('runs up to maxInFlight groups at once', async () => {
    const r = recorder()
    const gc = new GroupCommitter(r.run, { weight: () => 1, maxWeight: 2, maxInFlight: 2 })
    const all = [1, 2, 3, 4, 5].map((i) => gc.submit(i))
    await tick()
    expect(r.groups).toEqual([[1, 2], [3, 4]])
    r.releases[1]()
    await tick()
    await tick()
    expect(r.groups).toEqual([[1, 2], [3, 4], [5]])
    r.releases[0]()
    r.releases[2]()
    expect(await Promise.all(all)).toEqual([1, 2, 3, 4, 5].map((i) => `done ${i}`))
  })

  it("settles each item with its own result: one item's error is its alone", async () => {
    const r = recorder()
    const gc = new GroupCommitter(r.run, { weight: () => 1, maxWeight: 10, maxInFlight: 1 })
    const all = [1, -2, 3].map((i) => gc.submit(i))
    await tick()
    r.releases[0]()
    const settled = await Promise.allSettled(all)
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect((settled[1] as PromiseRejectedResult).reason.message).toBe('bad -2')
  })

  it('fails every item of a group when the run throws, and goes on with the next group', async () => {
    let calls = 0
    const gc = new GroupCommitter<number, number>(
      async (items) => {
        calls++
        if (calls === 1) throw new Error('connection lost')
        return items.map((i) => ({ ok: true, value: i * 10 }))
      },
      { weight: () => 1, maxWeight: 10, maxInFlight: 1 },
    )
    const failed = [1, 2].map((i) => gc.submit(i))
    const results = await Promise.allSettled(failed)
    expect(results.map((s) => s.status)).toEqual(['rejected', 'rejected'])
    expect(await gc.submit(3)).toBe(30)
  })

  it('rejects a group whose run answers for the wrong number of items', async () => {
    const gc = new GroupCommitter<number, number>(async () => [], { weight: () => 1, maxWeight: 10, maxInFlight: 1 })
    await expect(gc.submit(1)).rejects.toThrow(/0 results for 1 items/)
  })

  it('an item aborted while it waits is taken out and never runs; one already running is not affected', async () => {
    const r = recorder()
    const gc = new GroupCommitter(r.run, { weight: () => 1, maxWeight: 10, maxInFlight: 1 })
    const running = new AbortController()
    const first = gc.submit(1, running.signal)
    await tick()
    expect(r.groups).toEqual([[1]])
    const waiting = new AbortController()
    const second = gc.submit(2, waiting.signal)
    const third = gc.submit(3)
    await tick()
    waiting.abort(new Error('timed out'))
    running.abort(new Error('too late'))
    await expect(second).rejects.toThrow('timed out')
    expect(gc.waiting).toBe(1)
    r.releases[0]()
    expect(await first).toBe('done 1')
    await tick()
    r.releases[1]()
    expect(await third).toBe('done 3')
    expect(r.groups).toEqual([[1], [3]])
  })

  it('an item submitted with an aborted signal is refused at once', async () => {
    const gc = new GroupCommitter<number, number>(async (items) => items.map((i) => ({ ok: true, value: i })), {
      weight: () => 1,
      maxWeight: 10,
      maxInFlight: 1,
    })
    const abort = new AbortController()
    abort.abort(new Error('gone'))
    await expect(gc.submit(1, abort.signal)).rejects.toThrow('gone')
    expect(gc.waiting).toBe(0)
  })
})
