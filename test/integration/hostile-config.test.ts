import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import YAML from 'yaml'
import { validateConfigDocument } from '../../src/core/config-document/index.ts'
import { ADMIN_TOKEN, startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { fuzzRuns, hostileString, hostileValue } from '../helpers/hostile.ts'

/**
 * Fuzzing the configuration door: a realistic document (bench/config.yaml)
 * with random fields replaced by hostile values, removed, or joined by
 * unknown ones. The validator answers every document (never throws), and
 * PUT /admin/config answers 200 or a JSON 4xx, never a 5xx, for JSON and
 * YAML bodies alike, YAML alias bombs included.
 */

const BASE = YAML.parse(readFileSync(new URL('../../bench/config.yaml', import.meta.url), 'utf8')) as Record<string, unknown>

type Path = (string | number)[]

/** Every path to a value in the document (objects' keys and arrays' indexes). */
function paths(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at)
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...at, i], out))
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out)
  return out
}
const ALL_PATHS = paths(BASE).filter((p) => p.length > 0)

interface Mutation {
  path: number
  kind: 'replace' | 'delete' | 'add'
  key: string
  value: unknown
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  path: fc.nat({ max: ALL_PATHS.length - 1 }),
  kind: fc.constantFrom('replace', 'replace', 'delete', 'add'),
  key: fc.oneof(fc.string({ maxLength: 8 }), hostileString),
  value: hostileValue,
})

function mutate(doc: unknown, mutations: readonly Mutation[]): unknown {
  const copy = structuredClone(doc) as Record<string, unknown>
  for (const m of mutations) {
    const path = ALL_PATHS[m.path]
    let parent: any = copy
    for (const step of path.slice(0, -1)) {
      if (parent === null || typeof parent !== 'object' || !(step in parent)) return copy // an earlier mutation removed it
      parent = parent[step]
    }
    const last = path[path.length - 1]
    if (parent === null || typeof parent !== 'object') continue
    // A copy: fast-check hands out the same constant objects again, and a later
    // mutation inside one must not turn the document into a cycle.
    const value = structuredClone(m.value)
    if (m.kind === 'replace') parent[last] = value
    else if (m.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(Number(last), 1)
      else delete parent[last]
    } else if (!Array.isArray(parent)) Object.defineProperty(parent, m.key, { value, enumerable: true, configurable: true, writable: true })
  }
  return copy
}

const hostileDocument = fc.array(mutation, { minLength: 1, maxLength: 4 }).map((ms) => mutate(BASE, ms))

describe('validateConfigDocument, fuzzed', () => {
  it('answers every mutated document and every value at all, never throws', () => {
    expect(validateConfigDocument(BASE).ok).toBe(true)
    fc.assert(
      fc.property(fc.oneof({ weight: 4, arbitrary: hostileDocument }, { weight: 1, arbitrary: fc.anything() }), (doc) => {
        const result = validateConfigDocument(doc)
        if (!result.ok) {
          expect(result.errors.length).toBeGreaterThan(0)
          for (const e of result.errors) expect(typeof e).toBe('string')
        }
      }),
      fuzzRuns(1_500),
    )
  })
})

describe('PUT /admin/config, fuzzed', () => {
  let gp: TestGoalpost
  beforeAll(async () => {
    gp = await startGoalpost({ http: true, workers: false })
  })
  afterAll(async () => {
    await gp?.stop()
  })

  const serverErrors: string[] = []
  const put = async (body: string, contentType: string) => {
    const res = await fetch(`${gp.url}/admin/config`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': contentType },
      body,
    })
    const text = await res.text()
    if (res.status >= 500) serverErrors.push(`${res.status} ${text.slice(0, 300)} for ${body.slice(0, 300)}`)
    return { status: res.status, body: JSON.parse(text) }
  }
  const expectAnswer = (answer: { status: number; body: any }) => {
    expect(answer.status, JSON.stringify(answer.body)).toBeLessThan(500)
    if (answer.status === 200) expect(typeof answer.body.revision).toBe('number')
    else {
      expect(answer.status).toBeGreaterThanOrEqual(400)
      expect(answer.body.error.code.length).toBeGreaterThan(0)
      expect(answer.body.error.message.length).toBeGreaterThan(0)
    }
  }

  it('a mutated document, as JSON or as YAML: 200 (saved) or a 4xx that names the problem', async () => {
    let saved = 0
    await fc.assert(
      fc.asyncProperty(hostileDocument, fc.boolean(), async (doc, asYaml) => {
        const answer = asYaml ? await put(YAML.stringify(doc), 'application/yaml') : await put(JSON.stringify(doc), 'application/json')
        expectAnswer(answer)
        if (answer.status === 200) saved++
      }),
      fuzzRuns(200),
    )
    expect(serverErrors).toEqual([])
    expect(saved).toBeGreaterThan(0) // some mutations leave a valid document: the save path is exercised too
  })

  it('an alias bomb is refused with 400, and any text as YAML gets a 200 or a 4xx', async () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for (let i = 1; i <= 9; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`)
    const answer = await put(bomb.join('\n'), 'application/yaml')
    expect(answer.status).toBe(400)
    expect(answer.body.error.code).toBe('invalid_yaml')
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), async (text) => {
        if (text.trim() === '') return
        expectAnswer(await put(text, 'application/yaml'))
      }),
      fuzzRuns(150),
    )
    expect(serverErrors).toEqual([])
  })

  it('POST /admin/recompute: hostile bodies are queued (202) or get a 4xx', async () => {
    const recompute = async (body: string) => {
      const res = await fetch(`${gp.url}/admin/recompute`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body,
      })
      return { status: res.status, body: JSON.parse(await res.text()) }
    }
    expect((await recompute(JSON.stringify({ campaign: 'cart\u0000' }))).status).toBe(400) // once a 500 (Postgres refuses NUL)
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constant(undefined), fc.constantFrom('cart_recovery', 'a\u0000', 'x\ud800'), hostileValue),
        fc.oneof(fc.constant(undefined), fc.boolean(), hostileValue),
        async (campaign, dryRun) => {
          const answer = await recompute(JSON.stringify({ campaign, dry_run: dryRun }))
          expect(answer.status, JSON.stringify(answer.body)).toBeLessThan(500)
          if (answer.status === 202) expect(typeof answer.body.job_id).toBe('string')
          else expect(answer.body.error.code.length).toBeGreaterThan(0)
        },
      ),
      fuzzRuns(100),
    )
  })
})
