import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
beforeAll(async () => {
  gp = await startGoalpost()
})
afterAll(async () => {
  await gp.stop()
})

describe('POST /v1/batch → queue → events', () => {
  it('persists a track call with its processing time (R1) and seq (R2)', async () => {
    const res = await fetch(`${gp.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
      body: JSON.stringify({
        batch: [
          { type: 'track', userId: 'u1', event: 'Order Completed', messageId: 's1', properties: { total: 30 }, timestamp: '2020-01-01T00:00:00Z' },
          { type: 'track', userId: 'u1', event: 'Order Completed', messageId: 's2', properties: { total: 40 } },
        ],
      }),
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ success: true })
    const rows = await waitFor(async () => {
      const r = await gp.database.db('events').orderBy('seq')
      return r.length === 2 && r
    })
    expect(rows.map((r) => r.message_id)).toEqual(['s1', 's2'])
    expect(rows[0].seq).toBeLessThan(rows[1].seq)
    expect(rows[0].sent_timestamp.toISOString()).toBe('2020-01-01T00:00:00.000Z')
    // R1: the client's timestamp is stored, the processing time is the server's.
    expect(Date.now() - rows[0].received_at.getTime()).toBeLessThan(60_000)
    expect(rows[0].properties).toEqual({ total: 30 })
  })
})
