import { createHash } from 'node:crypto'
import { z } from 'zod'

/**
 * Segment message validation and normalisation: one place that turns a
 * Segment call (from /v1/*, the signed webhook, the plugin or an import) into
 * the row goalpost keeps in its log, or says precisely why it cannot.
 */

export const MESSAGE_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

/** Largest accepted message, serialised (CONTRACT.md). */
export const MAX_MESSAGE_BYTES = 32 * 1024
/** Ids and event names are indexed; keep them well inside a btree entry. */
export const MAX_ID_LENGTH = 255
export const MAX_EVENT_NAME_LENGTH = 1024
/**
 * Deepest nesting of objects and arrays in a message (the message itself is
 * level 1). Real Segment calls nest a few levels; a deeper one would only
 * exhaust the stack of JSON.stringify here or of Postgres' jsonb input.
 */
export const MAX_MESSAGE_DEPTH = 64

/**
 * Whether objects/arrays in `value` nest deeper than `max` levels. Recursive,
 * but never deeper than `max` + 1 calls whatever the input, so any depth is
 * safe to ask about.
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (value === null || typeof value !== 'object') return false
  if (max < 1) return true
  if (Array.isArray(value)) {
    for (const child of value) if (child !== null && typeof child === 'object' && nestsDeeperThan(child, max - 1)) return true
    return false
  }
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key]
    if (child !== null && typeof child === 'object' && nestsDeeperThan(child, max - 1)) return true
  }
  return false
}

/** A validated, normalised message: what the queue carries and `events` stores. */
export interface IngestMessage {
  messageId: string
  type: MessageType
  /** `track` event name; `Page Viewed` / `Screen Viewed` for page and screen; null otherwise. */
  name: string | null
  userId: string | null
  anonymousId: string | null
  /** track/page/screen properties; identify/group traits; alias: {}. */
  properties: Record<string, unknown>
  /**
   * alias `previousId`, group `groupId`; and the client's own times that R1
   * says are stored but never used: `originalTimestamp`, and a `receivedAt`
   * that is not the processing time (`clientReceivedAt`).
   */
  meta: Record<string, string> | null
  context: Record<string, unknown> | null
  /** Processing time (R1), ISO 8601. */
  receivedAt: string
  /** The message's own `timestamp`: stored, never used for rules (R1). */
  timestamp: string | null
}

export interface MessageProblem {
  code: 'invalid_message' | 'message_too_large'
  message: string
  path?: string
}

export type NormaliseResult =
  | {
      ok: true
      message: IngestMessage
      /** The message's size as sent, serialised (what the per-message limit counts). */
      bytes: number
    }
  | { ok: false; error: MessageProblem }

const id = z.union([
  z.string().max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`),
  z.number().finite(),
])
// A JSON object, checked without copying it (z.record would rebuild every
// properties/traits/context object key by key, on the ingest hot path).
const object = z.custom<Record<string, unknown>>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
)

// YYYY-MM-DD, optionally followed by a time of day and a zone offset.
const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/

/**
 * Parses an ISO 8601 date-time, or returns null. Stricter than Date.parse,
 * which takes "1" for 2001 and rolls 2020-02-31 over to March: a date it does
 * not name exactly is refused. A time without an offset is UTC (not the
 * server's zone, so the result never depends on where goalpost runs), and the
 * instant must lie in years 1-9999, which Postgres `timestamptz` stores.
 */
export function parseTimestamp(value: string): Date | null {
  const m = ISO_8601.exec(value.trim())
  if (!m) return null
  const [, y, mo, d, h = '00', mi = '00', s = '00', fraction = '', zone = 'Z'] = m
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number)
  const calendar = new Date(Date.UTC(2000, month - 1, day))
  calendar.setUTCFullYear(year)
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) return null
  if (hour > 23 || minute > 59 || second > 59) return null
  let offsetMinutes = 0
  if (zone !== 'Z' && zone !== 'z') {
    const digits = zone.slice(1).replace(':', '')
    const [oh, om] = [Number(digits.slice(0, 2)), Number(digits.slice(2) || '0')]
    if (oh > 23 || om > 59) return null
    offsetMinutes = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om)
  }
  const millis = Number(fraction.padEnd(3, '0').slice(0, 3))
  const utc = new Date(calendar.getTime() + ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1000 + millis)
  const utcYear = utc.getUTCFullYear()
  return utcYear >= 1 && utcYear <= 9999 ? utc : null
}

// What Date#toISOString writes, as every Segment library sends it.
const CANONICAL_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

const digits = (s: string, from: number, to: number) => {
  let n = 0
  for (let i = from; i < to; i++) n = n * 10 + s.charCodeAt(i) - 48
  return n
}

/** Whether a string of CANONICAL_ISO's shape names a real instant (no rolled-over date, no 24:00, no year 0). */
function exactCanonical(v: string): boolean {
  const [year, month, day] = [digits(v, 0, 4), digits(v, 5, 7), digits(v, 8, 10)]
  if (year < 1 || month < 1 || month > 12 || day < 1) return false
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
  return day <= days && digits(v, 11, 13) <= 23 && digits(v, 14, 16) <= 59 && digits(v, 17, 19) <= 59
}

/** `value` as an ISO 8601 UTC date-time (toISOString's form), or null: parseTimestamp with a fast path. */
export function isoTimestamp(value: string): string | null {
  // Already canonical and exact: as it is (what toISOString of its parse gives).
  if (CANONICAL_ISO.test(value) && exactCanonical(value)) return value
  return parseTimestamp(value)?.toISOString() ?? null
}

/** A date-time, parsed once: the schema's output is its ISO 8601 UTC form. */
const date = z.string().transform((v, ctx) => {
  const parsed = isoTimestamp(v)
  if (parsed === null) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO 8601 date-time (e.g. 2024-05-01T12:00:00.000Z) in years 1-9999' })
    return z.NEVER
  }
  return parsed
})

export const messageSchema = z.looseObject({
  type: z.enum(MESSAGE_TYPES, `must be one of ${MESSAGE_TYPES.join(', ')}`),
  messageId: id.nullish(),
  userId: id.nullish(),
  anonymousId: id.nullish(),
  previousId: id.nullish(),
  groupId: id.nullish(),
  event: z.string().max(MAX_EVENT_NAME_LENGTH, `must be at most ${MAX_EVENT_NAME_LENGTH} characters`).optional(),
  name: z.string().nullish(),
  category: z.string().nullish(),
  properties: object.nullish(),
  traits: object.nullish(),
  context: object.nullish(),
  timestamp: date.nullish(),
  originalTimestamp: date.nullish(),
  receivedAt: date.nullish(),
})

type ParsedMessage = z.output<typeof messageSchema>

const FAST_TYPES: ReadonlySet<unknown> = new Set(['track', 'identify', 'page', 'screen'])
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const plainId = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.length <= MAX_ID_LENGTH)
const plainText = (v: unknown) => v === undefined || v === null || typeof v === 'string'
const plainObject = (v: unknown) => v === undefined || v === null || isObject(v)
/** A date field as the schema outputs it, or false when the schema would not take it. */
const plainDate = (v: unknown): string | null | undefined | false =>
  v === undefined || v === null ? v : typeof v === 'string' ? (isoTimestamp(v) ?? false) : false

/**
 * What messageSchema.safeParse(candidate).data would be, for the common
 * message (track, identify, page, screen; string ids; canonical or valid
 * dates), checked without zod; null for anything else, which the schema then
 * parses, so its errors stay the schema's own. Same output, a fraction of
 * the cost on the ingest and import hot paths.
 */
export function plainMessage(c: Record<string, unknown>): ParsedMessage | null {
  if (!FAST_TYPES.has(c.type)) return null
  if (!plainId(c.messageId) || !plainId(c.userId) || !plainId(c.anonymousId) || !plainId(c.previousId) || !plainId(c.groupId)) return null
  if (c.event !== undefined && (typeof c.event !== 'string' || c.event.length > MAX_EVENT_NAME_LENGTH)) return null
  if (!plainText(c.name) || !plainText(c.category)) return null
  if (!plainObject(c.properties) || !plainObject(c.traits) || !plainObject(c.context)) return null
  const timestamp = plainDate(c.timestamp)
  const originalTimestamp = plainDate(c.originalTimestamp)
  const receivedAt = plainDate(c.receivedAt)
  if (timestamp === false || originalTimestamp === false || receivedAt === false) return null
  // Only the fields normaliseMessage reads (the schema's output also keeps unknown keys).
  return {
    type: c.type,
    messageId: c.messageId,
    userId: c.userId,
    anonymousId: c.anonymousId,
    previousId: c.previousId,
    groupId: c.groupId,
    event: c.event,
    name: c.name,
    category: c.category,
    properties: c.properties,
    traits: c.traits,
    context: c.context,
    timestamp,
    originalTimestamp,
    receivedAt,
  } as ParsedMessage
}

const asId = (value: string | number | null | undefined): string | null =>
  value === null || value === undefined || value === '' ? null : String(value)

// A NUL character or an unpaired surrogate escape (JSON.stringify writes lone
// surrogates as \udXXX) cannot be stored in Postgres text or jsonb. The leading
// group makes sure the backslash is not itself escaped.
const UNSTORABLE = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i

/**
 * JSON with object keys sorted: key order carries no meaning, so the same call
 * sent to /v1/track (type from the path) or inside a /v1/batch digests the same.
 */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

function problem(message: string, path?: string, code: MessageProblem['code'] = 'invalid_message'): NormaliseResult {
  return { ok: false, error: path ? { code, message: `${path}: ${message}`, path } : { code, message } }
}

/**
 * Validates one Segment message and returns its normalised form.
 * `receivedAt` is the processing time the caller decided (R1): server time on
 * the tracking API and the plugin, Segment's `receivedAt` on the signed webhook
 * (`honourReceivedAt`).
 */
export function normaliseMessage(
  input: unknown,
  opts: { receivedAt: string; typeFromPath?: MessageType; honourReceivedAt?: boolean },
): NormaliseResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return problem('a message must be a JSON object')
  const raw = input as Record<string, unknown>
  if (nestsDeeperThan(raw, MAX_MESSAGE_DEPTH))
    return problem(`objects and arrays nest deeper than ${MAX_MESSAGE_DEPTH} levels`)
  const candidate = opts.typeFromPath ? { ...raw, type: opts.typeFromPath } : raw
  let m = plainMessage(candidate)
  if (m === null) {
    const parsed = messageSchema.safeParse(candidate)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const path = issue.path.join('.')
      return problem(issue.message === 'Invalid input' && path ? 'has the wrong type' : issue.message, path || undefined)
    }
    m = parsed.data
  }

  const serialised = JSON.stringify(candidate)
  const bytes = Buffer.byteLength(serialised)
  if (bytes > MAX_MESSAGE_BYTES)
    return problem(`message is ${bytes} bytes, over the ${MAX_MESSAGE_BYTES}-byte limit`, undefined, 'message_too_large')
  if (UNSTORABLE.test(serialised))
    return problem('contains a NUL character or an unpaired UTF-16 surrogate, which cannot be stored')

  const userId = asId(m.userId)
  const anonymousId = asId(m.anonymousId)
  let name: string | null = null
  let properties: Record<string, unknown> = {}
  let meta: Record<string, string> | null = null

  switch (m.type) {
    case 'track':
      if (!m.event) return problem('is required for a track call', 'event')
      name = m.event
      properties = m.properties ?? {}
      break
    case 'page':
    case 'screen':
      name = m.type === 'page' ? 'Page Viewed' : 'Screen Viewed'
      properties = { ...(m.properties ?? {}) }
      if (m.name != null) properties.name = m.name
      if (m.category != null) properties.category = m.category
      break
    case 'identify':
      properties = m.traits ?? {}
      break
    case 'group': {
      const groupId = asId(m.groupId)
      if (groupId === null) return problem('is required for a group call', 'groupId')
      properties = m.traits ?? {}
      meta = { groupId }
      break
    }
    case 'alias': {
      const previousId = asId(m.previousId)
      if (previousId === null) return problem('is required for an alias call', 'previousId')
      if (userId === null) return problem('is required for an alias call', 'userId')
      meta = { previousId }
      break
    }
  }
  if (userId === null && anonymousId === null) return problem('a message needs a userId or an anonymousId', 'userId')

  const honoured = opts.honourReceivedAt && !!m.receivedAt
  const receivedAt = honoured ? m.receivedAt! : opts.receivedAt
  // R1: client-set times are stored, never used for rules.
  if (m.originalTimestamp) meta = { ...meta, originalTimestamp: m.originalTimestamp }
  if (m.receivedAt && !honoured) meta = { ...meta, clientReceivedAt: m.receivedAt }
  return {
    ok: true,
    bytes,
    message: {
      // Segment libraries always set messageId. Without one, a digest of the
      // message stands in, so a client retrying the same message stays idempotent.
      // An empty messageId counts as absent, like an empty userId.
      messageId: asId(m.messageId) ?? `gp-${createHash('sha256').update(canonicalJson(candidate)).digest('hex').slice(0, 40)}`,
      type: m.type,
      name,
      userId,
      anonymousId,
      properties,
      meta,
      context: m.context ?? null,
      receivedAt,
      timestamp: m.timestamp ?? null,
    },
  }
}
