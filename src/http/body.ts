import { promisify } from 'node:util'
import zlib from 'node:zlib'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import sjson from 'secure-json-parse'
import { InputError } from '../errors.ts'
import { MAX_MESSAGE_DEPTH, nestsDeeperThan } from '../segment/normalise.ts'

/** Largest request accepted, after decompression (CONTRACT.md: 413 over 500 KB). */
export const MAX_REQUEST_BYTES = 500 * 1024
/**
 * Deepest nesting a body may have: a few levels of envelope (`{batch: [...]}`)
 * above the deepest message normalisation accepts, so that one too-deep
 * message in a batch is listed as rejected rather than refusing the request.
 * Bounded at all because routes serialise parts of the body (JSON.stringify
 * recurses): 400 rather than a stack overflow and a 500.
 */
export const MAX_BODY_DEPTH = MAX_MESSAGE_DEPTH * 2

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body as received (decompressed): what webhook signatures cover. */
    rawBody?: Buffer
  }
}

const gunzip = promisify(zlib.gunzip)
const inflate = promisify(zlib.inflate)

/** The body as sent, decompressed (`Content-Encoding` gzip or deflate), bounded by MAX_REQUEST_BYTES. */
export async function decode(request: FastifyRequest, body: Buffer): Promise<Buffer> {
  const encoding = String(request.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
  if (encoding === 'identity' || encoding === '') return body
  if (encoding !== 'gzip' && encoding !== 'deflate')
    throw new InputError(415, 'unsupported_encoding', `Content-Encoding "${encoding}" is not supported; send gzip, deflate or none`)
  try {
    // maxOutputLength stops a decompression bomb at the same limit as a plain body.
    const opts = { maxOutputLength: MAX_REQUEST_BYTES }
    return encoding === 'gzip' ? await gunzip(body, opts) : await inflate(body, opts)
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
      throw new InputError(413, 'request_too_large', `request body is over ${MAX_REQUEST_BYTES} bytes once decompressed`)
    throw new InputError(400, 'invalid_encoding', `body is not valid ${encoding} data: ${(err as Error).message}`)
  }
}

/**
 * Every body is JSON, whatever Content-Type a Segment library labels it with,
 * possibly gzip- or deflate-encoded. The decoded bytes are kept on the request
 * for signature checks; `__proto__`/`constructor.prototype` keys are dropped.
 */
/** Parses a decoded body as JSON, dropping `__proto__`/`constructor.prototype` keys and refusing absurd nesting. */
export function parseJsonBody(raw: Buffer): unknown {
  if (raw.length === 0) throw new InputError(400, 'invalid_json', 'request body is empty; send a JSON document')
  let body: unknown
  try {
    body = sjson.parse(raw.toString('utf8'), undefined, { protoAction: 'remove', constructorAction: 'remove' })
  } catch (err) {
    throw new InputError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`)
  }
  if (nestsDeeperThan(body, MAX_BODY_DEPTH))
    throw new InputError(400, 'too_deeply_nested', `request body nests objects and arrays deeper than ${MAX_BODY_DEPTH} levels`)
  return body
}

/**
 * Every body is JSON, whatever Content-Type a Segment library labels it with,
 * possibly gzip- or deflate-encoded. The decoded bytes are kept on the request.
 */
export function registerJsonBody(app: FastifyInstance): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_REQUEST_BYTES }, async (request: FastifyRequest, payload: Buffer) => {
    const raw = await decode(request, payload)
    request.rawBody = raw
    return parseJsonBody(raw)
  })
}

/** For routes that must see the bytes before parsing them (signature checks): the body stays a Buffer. */
export function registerRawBody(app: FastifyInstance): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_REQUEST_BYTES }, async (_request: FastifyRequest, payload: Buffer) => payload)
}
