import { z } from 'zod'
import { ConfigError } from './errors.ts'

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
  ingestConcurrency: number
  /** BullMQ job lock: how long before a dead worker's job is run again elsewhere. */
  jobLockMs: number
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

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/goalpost'),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
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
  GOALPOST_INGEST_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  GOALPOST_JOB_LOCK_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
})

/** Reads and validates the environment; throws one ConfigError naming every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "unset", as in most twelve-factor tools.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''))
  const parsed = schema.safeParse(present)
  const problems: string[] = parsed.success
    ? []
    : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)
  if (!parsed.success) throw new ConfigError(problems)
  const e = parsed.data
  const writeKeys = e.GOALPOST_WRITE_KEYS.split(',').map((k) => k.trim()).filter(Boolean)
  if (writeKeys.length === 0) problems.push('GOALPOST_WRITE_KEYS: must name at least one key')
  if (e.NODE_ENV === 'production') {
    if (writeKeys.includes(DEV_DEFAULTS.writeKeys))
      problems.push(`GOALPOST_WRITE_KEYS: must not contain the development default "${DEV_DEFAULTS.writeKeys}" in production`)
    if (e.GOALPOST_WEBHOOK_SECRET === DEV_DEFAULTS.webhookSecret)
      problems.push('GOALPOST_WEBHOOK_SECRET: must be set to a secret of your own in production')
    if (e.GOALPOST_ADMIN_TOKEN === DEV_DEFAULTS.adminToken)
      problems.push('GOALPOST_ADMIN_TOKEN: must be set to a token of your own in production')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return {
    env: e.NODE_ENV,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    port: e.PORT,
    host: e.HOST,
    writeKeys,
    webhookSecret: e.GOALPOST_WEBHOOK_SECRET,
    adminToken: e.GOALPOST_ADMIN_TOKEN,
    configFile: e.GOALPOST_CONFIG,
    queuePrefix: e.GOALPOST_QUEUE_PREFIX,
    logLevel: e.GOALPOST_LOG_LEVEL,
    ingestConcurrency: e.GOALPOST_INGEST_CONCURRENCY,
    jobLockMs: e.GOALPOST_JOB_LOCK_MS,
  }
}
