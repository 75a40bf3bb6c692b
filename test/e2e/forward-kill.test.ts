/**
 * The outbox survives a killed worker (docs/outbound.md): a worker process
 * commits conversions, starts sending them to a collector that does not
 * answer, and is SIGKILLed mid-send; a new worker sends them again and each
 * conversion reaches Segment exactly once by messageId.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCollector, type Collector } from '../helpers/collector.ts'
import { startGoalpost, testEnv, type TestGoalpost } from '../helpers/goalpost.ts'
import { killAllGoalposts, spawnGoalpost, stopGoalpost, type GoalpostProcess } from '../helpers/goalpost-process.ts'
import { putConfig } from '../helpers/segment-webhook.ts'
import { cartCampaign, conversionRows, order, outboxRows, persisted, producer, type Call } from '../helpers/outbound.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
let collector: Collector
let env: Record<string, string>
const PEOPLE = Array.from({ length: 12 }, (_, i) => `k${i + 1}`)

beforeAll(async () => {
  collector = await startCollector()
  const forward = { GOALPOST_FORWARD_WRITE_KEY: 'forward-key', GOALPOST_FORWARD_HOST: collector.url }
  gp = await startGoalpost({ http: true, workers: false }, forward)
  // A send times out after a lock (4 s): the killed worker's claims are taken again after three.
  env = testEnv(gp.database, gp.config.queuePrefix, { ...forward, GOALPOST_JOB_LOCK_MS: '4000' })
}, 60_000)

afterAll(async () => {
  await killAllGoalposts()
  await gp?.stop()
  await collector?.close()
})

describe('a worker killed between the commit and the send', () => {
  it('loses nothing: a new worker sends each conversion again, exactly once by messageId', async () => {
    const first: GoalpostProcess = spawnGoalpost('worker', env)
    await putConfig(gp, { campaigns: [cartCampaign()] }) // evaluated by the worker: it is up
    collector.respond = () => 'hang' // the send starts and never ends
    const p = producer(gp)
    const ids: string[] = []
    const phases: Call[][] = [
      PEOPLE.map((u) => ({ kind: 'track', userId: u, event: 'Cart Abandoned', properties: {} })),
      PEOPLE.map((u) => ({ kind: 'track', userId: u, event: 'Email Sent', properties: { delivery_id: `${u}-d1`, campaign_id: 'cart' } })),
      PEOPLE.map((u, i) => order(u, i + 1)),
    ]
    for (const phase of phases) ids.push(...(await p.send(phase)))
    await p.close()
    await persisted(gp, ids)
    expect(await conversionRows(gp)).toHaveLength(PEOPLE.length)

    // Committed, claimed and on the wire: kill the worker now.
    await waitFor(() => collector.batches.some((b) => b.status === null && b.batch.length > 0), { what: 'a send in flight', timeoutMs: 30_000 })
    first.child.kill('SIGKILL')
    expect((await first.exited()).signal).toBe('SIGKILL')
    const hung = new Set(collector.batches.filter((b) => b.status === null).flatMap((b) => b.batch.map((m) => m.messageId)))
    expect(hung.size).toBeGreaterThan(0)
    expect((await outboxRows(gp)).filter((r) => r.sent_at !== null)).toEqual([]) // nothing counted as sent
    collector.releaseHanging()
    collector.respond = () => 200

    const second = spawnGoalpost('worker', env)
    await waitFor(async () => (await outboxRows(gp)).every((r) => r.sent_at !== null), { what: 'every change sent by the new worker', timeoutMs: 90_000 })
    await stopGoalpost(second)

    const conversions = await conversionRows(gp)
    const accepted = collector.accepted().filter((m) => m.event === 'Conversion Recorded')
    const byJourney = new Map<string, Set<string>>()
    for (const m of accepted) byJourney.set(m.properties!.journey_id as string, (byJourney.get(m.properties!.journey_id as string) ?? new Set()).add(m.messageId))
    // Exactly once by messageId: one id per conversion, none missing, none extra.
    expect([...byJourney.keys()].sort()).toEqual(conversions.map((c) => c.journey_id).sort())
    for (const idsOfJourney of byJourney.values()) expect(idsOfJourney.size).toBe(1)
    // What was on the wire when the worker died went again, under the same ids.
    const acceptedIds = new Set(accepted.map((m) => m.messageId))
    for (const id of hung) expect(acceptedIds.has(id)).toBe(true)
    expect(collector.messages().length).toBeGreaterThan(acceptedIds.size) // there were resends
  }, 180_000)
})
