import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'

// HTTP only, no workers: accepted batches stay waiting, which the gauges must show.
let gp: TestGoalpost
beforeAll(async () => {
  gp = await startGoalpost({ http: true, workers: false })
})
afterAll(async () => {
  await gp.stop()
})

async function scrape(): Promise<string> {
  const res = await fetch(`${gp.url}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/)
  return res.text()
}

const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('GET /metrics (CONTRACT.md: Prometheus text)', () => {
  it('CONTRACT metrics: per-queue waiting/active gauges, evaluation lag, accepted and rejected message counters', async () => {
    const res = await fetch(`${gp.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
      body: JSON.stringify({
        batch: [
          { type: 'track', userId: 'm1', event: 'Order Completed', messageId: 'met-1' },
          { type: 'track', userId: 'm1', event: 'Order Completed', messageId: 'met-2' },
          { type: 'track', userId: 'm1', messageId: 'met-bad' },
        ],
      }),
    })
    expect(res.status).toBe(200)
    await new Promise((r) => setTimeout(r, 20)) // the lag is the waiting batch's age: make it measurably > 0

    const text = await scrape()
    expect(value(text, 'goalpost_queue_waiting{queue="{ingest}"}')).toBe(1)
    expect(value(text, 'goalpost_queue_active{queue="{ingest}"}')).toBe(0)
    expect(value(text, 'goalpost_queue_waiting{queue="{maintenance}"}')).toBe(0)
    expect(value(text, 'goalpost_messages_accepted_total{source="api"}')).toBe(2)
    expect(value(text, 'goalpost_messages_rejected_total{source="api",code="invalid_message"}')).toBe(1)
    expect(value(text, 'goalpost_evaluation_lag_seconds')).toBeGreaterThan(0)
    expect(text).toMatch(/^# TYPE goalpost_process_resident_memory_bytes gauge$/m)
  })
})
