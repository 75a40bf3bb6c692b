// Shared by the load generator threads: one POST /v1/batch with the write key,
// resolved (never rejected) with the status and body, 0 on a network error;
// and the tally of answers (LoadResult in bench/lib.ts).
import http from 'node:http'

export function batchPoster(url, writeKey, userAgent) {
  const target = new URL('/v1/batch', url)
  const authorization = `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`
  return (agent, body) =>
    new Promise((resolve) => {
      const req = http.request(
        {
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': body.length, authorization, 'user-agent': userAgent },
        },
        (res) => {
          const chunks = []
          res.on('data', (c) => chunks.push(c))
          res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }))
          res.on('error', (err) => resolve({ status: 0, body: String(err) }))
        },
      )
      req.on('error', (err) => resolve({ status: 0, body: `${err.code ?? ''} ${err.message}` }))
      req.end(body)
    })
}

export function newLoadResult() {
  return { requests: 0, ok: 0, acceptedEvents: 0, failedEvents: 0, rejectedEvents: 0, statuses: {}, errors: [], latencies: [], firstRequestAt: Infinity, lastResponseAt: 0 }
}

/** Counts the answer `res` to a batch of `events` messages sent at sentAt (firstRequestAt is the caller's). */
export function recordAnswer(result, res, events, sentAt, doneAt) {
  result.lastResponseAt = Math.max(result.lastResponseAt, doneAt)
  result.latencies.push(doneAt - sentAt)
  result.requests++
  result.statuses[res.status] = (result.statuses[res.status] ?? 0) + 1
  if (res.status === 200) {
    result.ok++
    let rejected = 0
    if (res.body.length > 20) {
      try {
        rejected = JSON.parse(res.body).rejected?.length ?? 0
      } catch {}
      if (rejected > 0 && result.errors.length < 5) result.errors.push({ status: 200, body: res.body.slice(0, 600) })
    }
    result.acceptedEvents += events - rejected
    result.rejectedEvents += rejected
  } else {
    result.failedEvents += events
    if (result.errors.length < 5) result.errors.push({ status: res.status, body: res.body.slice(0, 600) })
  }
}
