import { readFile } from 'node:fs/promises'
import path from 'node:path'
import YAML from 'yaml'
import type { Config } from '../config.ts'
import { ConfigDocumentError, validateConfigDocument, type ConfigDocument } from '../core/config-document/index.ts'
import { applyConfig, type ApplyResult } from '../db/config.ts'
import { createDb, type Knex } from '../db/knex.ts'
import { migrateToLatest } from '../db/migrate.ts'
import { applyResultBody } from '../http/admin-routes.ts'
import { redactUrl } from './user-errors.ts'

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]

/** Parses by extension (.json, .yaml/.yml); any other name is tried as JSON, then as YAML. */
function parseText(file: string, text: string): unknown {
  const ext = path.extname(file).toLowerCase()
  const yaml = () => {
    try {
      return YAML.parse(text)
    } catch (err) {
      throw new ConfigDocumentError([`document: not valid YAML: ${firstLine(err)}`], file)
    }
  }
  if (ext === '.yaml' || ext === '.yml') return yaml()
  try {
    return JSON.parse(text)
  } catch (err) {
    if (ext === '.json') throw new ConfigDocumentError([`document: not valid JSON: ${firstLine(err)}`], file)
    return yaml()
  }
}

/** Reads and validates a config file; throws ConfigDocumentError listing every problem. */
export async function loadConfigFile(file: string): Promise<{ raw: unknown; document: ConfigDocument }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigDocumentError([`document: cannot read the file: ${firstLine(err)}`], file)
  }
  const raw = parseText(file, text)
  const validated = validateConfigDocument(raw)
  if (!validated.ok) throw new ConfigDocumentError(validated.errors, file)
  return { raw: raw ?? {}, document: validated.document }
}

/** Reads, validates and saves a config file as the whole configuration. */
export async function applyConfigFile(db: Knex, file: string, opts: { now: Date; source: string }): Promise<ApplyResult> {
  const { raw, document } = await loadConfigFile(file)
  return applyConfig(db, document, { ...opts, raw })
}

export function describeResult(file: string, result: ApplyResult): string {
  if (!result.changed) return `${file} changes nothing: the configuration in force (revision ${result.revision}) already says the same`
  return `applied ${file} as revision ${result.revision}:\n  ${result.changes.join('\n  ')}`
}

/** `goalpost apply FILE [--json]`: exit 0 when saved (or unchanged), 1 with every error listed otherwise. */
export async function applyCommand(file: string, config: Config, opts: { json?: boolean } = {}): Promise<number> {
  let loaded: Awaited<ReturnType<typeof loadConfigFile>>
  try {
    loaded = await loadConfigFile(file)
  } catch (err) {
    if (!(err instanceof ConfigDocumentError)) throw err
    console.error(`goalpost apply: ${err.message}`)
    return 1
  }
  // A one-shot command: bring the schema up to date rather than ask for `goalpost migrate`.
  try {
    await migrateToLatest(config.databaseUrl)
  } catch (err) {
    console.error(`goalpost apply: cannot prepare the database ${redactUrl(config.databaseUrl)}: ${firstLine(err)}\nCheck DATABASE_URL and that Postgres is running; nothing was saved.`)
    return 1
  }
  const db = createDb(config.databaseUrl, { poolMax: 2, applicationName: 'goalpost-apply' })
  try {
    const result = await applyConfig(db, loaded.document, { now: new Date(), source: `cli:${file}`, raw: loaded.raw })
    console.log(opts.json ? JSON.stringify(applyResultBody(result)) : describeResult(file, result))
    return 0
  } finally {
    await db.destroy()
  }
}
