/**
 * What every part of the document's validation uses: messages in the
 * document's vocabulary (with their paths), running a schema and collecting
 * its problems, the zod building blocks, and readers of the raw document.
 */
import { z } from 'zod'
import { formatDuration, parseDuration } from '../duration.ts'
import { KEY_PATTERN } from './document.ts'

// ---------------------------------------------------------------------------
// Messages

export type Path = ReadonlyArray<PropertyKey>

export function formatPath(path: Path): string {
  let out = ''
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`
  return out === '' ? 'document' : out
}

export function describe(input: unknown): string {
  if (input === null) return 'null'
  if (Array.isArray(input)) return 'a list'
  if (typeof input === 'object') return 'a mapping'
  if (typeof input === 'string') return JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)
  return String(input)
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = row[j]
      row[j] = next
    }
  }
  return row[b.length]
}

export function suggestion(word: string, candidates: readonly string[]): string {
  const close = candidates
    .map((c) => ({ c, d: editDistance(word.toLowerCase(), c.toLowerCase()) }))
    .filter(({ c, d }) => d <= Math.max(1, Math.floor(c.length / 3)))
    .sort((x, y) => x.d - y.d)[0]
  return close ? `did you mean "${close.c}"?` : `use one of ${candidates.join(', ')}`
}

export function listNames(names: readonly string[]): string {
  return names.length === 0 ? 'none' : names.length > 10 ? `${names.slice(0, 10).join(', ')}, …` : names.join(', ')
}

/** Messages for zod's own issues, in the document's vocabulary. */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required'
      return `must be ${TYPE_NAMES[iss.expected] ?? iss.expected}, got ${describe(iss.input)}`
    case 'too_small':
      return iss.origin === 'array' || iss.origin === 'string' ? 'must not be empty' : `must be at least ${iss.minimum}`
    case 'too_big':
      return `must be at most ${iss.maximum}`
    default:
      return undefined
  }
}

export interface Problem {
  path: PropertyKey[]
  message: string
}

export type Outcome<T> = { ok: true; data: T } | { ok: false; problems: Problem[] }

export function run<T>(schema: z.ZodType<T>, value: unknown): Outcome<T> {
  const result = schema.safeParse(value, { error: errorMap })
  if (result.success) return { ok: true, data: result.data }
  return {
    ok: false,
    problems: result.error.issues.map((iss) => {
      const path = [...iss.path]
      const params = (iss as { params?: { unknownKeyOf?: string[] } }).params
      if (params?.unknownKeyOf) {
        const key = String(path[path.length - 1])
        return { path, message: `unknown key; ${suggestion(key, params.unknownKeyOf)}` }
      }
      return { path, message: iss.message }
    }),
  }
}

export const FAILED: unique symbol = Symbol('failed')

/** Runs `schema` inside a transform, forwarding its problems at their relative paths. */
export function within<T>(ctx: z.core.$RefinementCtx, schema: z.ZodType<T>, value: unknown): T | typeof FAILED {
  const outcome = run(schema, value)
  if (outcome.ok) return outcome.data
  for (const p of outcome.problems) ctx.addIssue({ code: 'custom', message: p.message, path: p.path })
  return FAILED
}

export function fail(ctx: z.core.$RefinementCtx, message: string, path: PropertyKey[] = []): typeof z.NEVER {
  ctx.addIssue({ code: 'custom', message, path })
  return z.NEVER
}

// ---------------------------------------------------------------------------
// Building blocks

/** An object that rejects keys it does not know, each at its own path. */
export function strict<S extends z.core.$ZodLooseShape>(shape: S) {
  const allowed = Object.keys(shape)
  return z.object(shape).catchall(
    z.unknown().transform((_v, ctx) => {
      ctx.addIssue({ code: 'custom', message: 'unknown key', params: { unknownKeyOf: allowed } })
      return z.NEVER
    }),
  )
}

export const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

export function oneOf<const T extends readonly [string, ...string[]]>(values: T, what = 'value') {
  return z.enum(values, {
    error: (iss) =>
      iss.input === undefined
        ? 'is required'
        : typeof iss.input === 'string'
        ? `unknown ${what} ${JSON.stringify(iss.input)}; ${suggestion(iss.input, values)}`
        : `must be one of ${values.join(', ')}, got ${describe(iss.input)}`,
  })
}

export const text = z.string().trim().min(1)
export const key = z.string().regex(KEY_PATTERN, 'must be 1-64 characters of a-z, 0-9, _ and -')

export function duration(bounds: { min: number; max: number }) {
  return z.unknown().transform((value, ctx) => {
    if (value === undefined) return fail(ctx, 'is required')
    const ms = parseDuration(value)
    if (ms === null) return fail(ctx, `must be a duration like 30m, 12h or 7d (an integer and one of s, m, h, d), got ${describe(value)}`)
    if (ms < bounds.min) return fail(ctx, `must be at least ${formatDuration(bounds.min)}`)
    if (ms > bounds.max) return fail(ctx, `must be at most ${formatDuration(bounds.max)}`)
    return ms
  })
}

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)$/

export const isoInstant = z.unknown().transform((value, ctx) => {
  if (value instanceof Date && Number.isFinite(value.getTime())) return value.toISOString()
  const ms = typeof value === 'string' && ISO_DATE_TIME.test(value.trim()) ? Date.parse(value.trim()) : NaN
  if (!Number.isFinite(ms))
    return fail(ctx, `must be an ISO 8601 date-time with a time zone, like 2026-01-01T00:00:00Z, got ${describe(value)}`)
  return new Date(ms).toISOString()
})

export const match = oneOf(['all', 'any']).default('all')

/** Exactly one of `kinds` present: which one, or a problem. */
export function kindOf<K extends string>(ctx: z.core.$RefinementCtx, input: unknown, kinds: readonly K[]): K | null {
  if (!isMapping(input)) {
    fail(ctx, `must be a mapping with one of ${kinds.join(', ')}, got ${describe(input)}`)
    return null
  }
  const found = kinds.filter((k) => k in input)
  if (found.length === 1) return found[0]
  fail(ctx, found.length === 0 ? `must have one of ${kinds.join(', ')}` : `must have only one of ${kinds.join(', ')} (found ${found.join(' and ')})`)
  return null
}

// ---------------------------------------------------------------------------
// The raw document, for checks across entries (they run whatever else fails)

export const rawList = (doc: Record<string, unknown>, name: string): unknown[] => (Array.isArray(doc[name]) ? (doc[name] as unknown[]) : [])
export const rawKeyOf = (item: unknown): string | null =>
  isMapping(item) && typeof item.key === 'string' && KEY_PATTERN.test(item.key) ? item.key : null
