/**
 * A Segment-compatible collector for tests: an HTTP server that records every
 * `/v1/batch` body it receives and answers as `respond` says (200 by default;
 * a status, or 'hang' to keep the request open until the test lets go).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface CollectedMessage {
  messageId: string
  type: string
  event?: string
  userId?: string
  anonymousId?: string
  timestamp?: string
  properties?: Record<string, unknown>
  context?: Record<string, any>
}

export interface CollectedBatch {
  authorization: string | undefined
  batch: CollectedMessage[]
  /** The status answered, or null while (or if) the request hangs. */
  status: number | null
}

export type Respond = (batch: CollectedMessage[]) => number | 'hang'

export interface Collector {
  url: string
  batches: CollectedBatch[]
  respond: Respond
  /** Every message received, in arrival order (resends included). */
  messages(): CollectedMessage[]
  /** Messages of requests answered 2xx: what Segment accepted. */
  accepted(): CollectedMessage[]
  /** Ends the hanging requests (their sockets are destroyed). */
  releaseHanging(): void
  close(): Promise<void>
}

export async function startCollector(): Promise<Collector> {
  const hanging = new Set<ServerResponse>()
  const collector: Collector = {
    url: '',
    batches: [],
    respond: () => 200,
    messages: () => collector.batches.flatMap((b) => b.batch),
    accepted: () => collector.batches.filter((b) => b.status !== null && b.status < 300).flatMap((b) => b.batch),
    releaseHanging() {
      for (const res of hanging) res.socket?.destroy()
      hanging.clear()
    },
    close: async () => {
      collector.releaseHanging()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.url !== '/v1/batch') return void res.writeHead(404).end()
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { batch: CollectedMessage[] }
      const entry: CollectedBatch = { authorization: req.headers.authorization, batch: body.batch, status: null }
      collector.batches.push(entry)
      const answer = collector.respond(body.batch)
      if (answer === 'hang') return void hanging.add(res)
      entry.status = answer
      res.writeHead(answer, { 'content-type': 'application/json' }).end(JSON.stringify(answer < 300 ? { success: true } : { error: 'refused' }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  collector.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return collector
}
