import type { FastifyInstance, FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyRequest {
    receivedAtIso?: string
  }
}

/** R1: the processing time of a request is the instant it arrived. */
export function registerReceivedAt(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    request.receivedAtIso = new Date().toISOString()
  })
}

export const receivedAt = (request: FastifyRequest): string => request.receivedAtIso ?? new Date().toISOString()
