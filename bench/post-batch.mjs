// Shared by the load generator threads: one POST /v1/batch with the write key,
// resolved (never rejected) with the status and body, 0 on a network error.
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
