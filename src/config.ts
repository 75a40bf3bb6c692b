import { z } from 'zod'
import { ConfigError } from './errors.ts'
import { parseRateLimit, type RateLimit } from './http/rate-limit.ts'

/**
 * The process configuration, read once from the environment (CONTRACT.md,
 * Environment). Every problem is reported together, and production refuses the
 * development-default secrets.
 */
export interface Config {
  env: 'development' | 'production' | 'test'
  databaseUrl: string
  redisUrl: string
  port: number
  host: string
  writeKeys: string[]
  webhookSecret: string
  adminToken: string
  configFile: string | undefined
  queuePrefix: string
  logLevel: string
  /** How many ingest jobs one worker process runs at once. */
  /** Ingest transactions at once per worker process. */
  ingestConcurrency: number
  /** Most messages one ingest transaction persists (group commit of queued batches). */
  ingestGroupMessages: number
  /** BullMQ job lock, renewed every half lock; a dead worker's jobs run again elsewhere within about 1.5 locks (src/jobs/workers.ts). */
  jobLockMs: number
  /** Per-write-key limit on the tracking API (GOALPOST_RATE_LIMIT), or none. */
  rateLimit: RateLimit | null
  /** Segment write key conversions are forwarded with (docs/outbound.md); none: no forwarding. */
  forwardWriteKey?: string
  /** Segment-compatible collector the forwarded calls go to (default Segment's own API). */
  forwardHost?: string
}

export const DEV_DEFAULTS = {
  writeKeys: 'dev-write-key',
  webhookSecret: 'dev-webhook-secret',
  adminToken: 'dev-admin-token',
} as const

const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol)
      } catch {
        return false
      }
    },
    { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  )

const nonEmpty = z.string().trim().min(1, 'must not be empty')

/** A whole number written in decimal digits ("8080"; not "8e3", "0x1f90" or blanks, which Number() would take). */
const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/goalpost'),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  PORT: integer(0, 65535).default(8080),
  HOST: nonEmpty.default('127.0.0.1'),
  GOALPOST_WRITE_KEYS: nonEmpty.default(DEV_DEFAULTS.writeKeys),
  GOALPOST_WEBHOOK_SECRET: nonEmpty.default(DEV_DEFAULTS.webhookSecret),
  GOALPOST_ADMIN_TOKEN: nonEmpty.default(DEV_DEFAULTS.adminToken),
  GOALPOST_CONFIG: nonEmpty.optional(),
  GOALPOST_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}-]{1,64}$/, 'must be 1-64 letters, digits, _ - { } (no ":")')
    .default('goalpost'),
  GOALPOST_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GOALPOST_INGEST_CONCURRENCY: integer(1, 64).default(2),
  GOALPOST_INGEST_GROUP_MESSAGES: integer(1, 100_000).default(1_000),
  // 10 s: a killed worker's jobs wait at most ~15 s; a process whose event loop
  // is blocked for over 5 s may lose a lock, and the job then runs twice (harmless).
  GOALPOST_JOB_LOCK_MS: integer(1_000, 600_000).default(10_000),
  GOALPOST_FORWARD_WRITE_KEY: nonEmpty.optional(),
  GOALPOST_FORWARD_HOST: url(['http:', 'https:']).optional(),
  GOALPOST_RATE_LIMIT: z
    .string()
    .optional()
    .transform((value, ctx) => {
      try {
        return parseRateLimit(value)
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message })
        return z.NEVER
      }
    }),
})

type Env = z.infer<typeof schema>

/** Reads and validates the environment; throws one ConfigError naming every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "unset", as in most twelve-factor tools.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''))
  // Each variable on its own, so that one bad value does not hide the others'
  // problems (nor production's refusal of a development secret).
  const problems: string[] = []
  const e: Partial<Env> = {}
  for (const [name, field] of Object.entries(schema.shape)) {
    const result = field.safeParse(present[name])
    if (result.success) (e as Record<string, unknown>)[name] = result.data
    else problems.push(...result.error.issues.map((issue) => `${name}: ${issue.message}`))
  }
  const writeKeys = (e.GOALPOST_WRITE_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean)
  if (e.GOALPOST_WRITE_KEYS !== undefined && writeKeys.length === 0)
    problems.push('GOALPOST_WRITE_KEYS: must name at least one key')
  if (e.NODE_ENV === 'production') {
    if (writeKeys.includes(DEV_DEFAULTS.writeKeys))
      problems.push(`GOALPOST_WRITE_KEYS: must not contain the development default "${DEV_DEFAULTS.writeKeys}" in production`)
    if (e.GOALPOST_WEBHOOK_SECRET === DEV_DEFAULTS.webhookSecret)
      problems.push('GOALPOST_WEBHOOK_SECRET: must be set to a secret of your own in production')
    if (e.GOALPOST_ADMIN_TOKEN === DEV_DEFAULTS.adminToken)
      problems.push('GOALPOST_ADMIN_TOKEN: must be set to a token of your own in production')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  const valid = e as Env
  return {
    env: valid.NODE_ENV,
    databaseUrl: valid.DATABASE_URL,
    redisUrl: valid.REDIS_URL,
    port: valid.PORT,
    host: valid.HOST,
    writeKeys,
    webhookSecret: valid.GOALPOST_WEBHOOK_SECRET,
    adminToken: valid.GOALPOST_ADMIN_TOKEN,
    configFile: valid.GOALPOST_CONFIG,
    queuePrefix: valid.GOALPOST_QUEUE_PREFIX,
    logLevel: valid.GOALPOST_LOG_LEVEL,
    ingestConcurrency: valid.GOALPOST_INGEST_CONCURRENCY,
    ingestGroupMessages: valid.GOALPOST_INGEST_GROUP_MESSAGES,
    jobLockMs: valid.GOALPOST_JOB_LOCK_MS,
    rateLimit: valid.GOALPOST_RATE_LIMIT ?? null,
    ...(valid.GOALPOST_FORWARD_WRITE_KEY ? { forwardWriteKey: valid.GOALPOST_FORWARD_WRITE_KEY } : {}),
    ...(valid.GOALPOST_FORWARD_HOST ? { forwardHost: valid.GOALPOST_FORWARD_HOST } : {}),
  }
}
