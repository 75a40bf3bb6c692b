/**
 * Summarises V8 .cpuprofile files (written by `node --cpu-prof`): self time
 * by category (app code, each npm package, node internals, GC, idle) and the
 * hottest functions. Used by `npm run bench -- --cpu-prof`; also runnable
 * alone: `npx tsx bench/cpuprofile.ts FILE.cpuprofile…`.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

export interface ProfileSummary {
  file: string
  wallMs: number
  busyMs: number
  categories: { name: string; ms: number; pct: number }[]
  functions: { name: string; where: string; ms: number; pct: number }[]
}

function category(frame: CallFrame): string {
  const { url, functionName } = frame
  if (!url) {
    if (functionName === '(idle)') return '(idle)'
    if (functionName === '(garbage collector)') return '(garbage collector)'
    if (functionName === '(program)') return '(program: native/unattributed)'
    return `(native) ${functionName || 'anonymous'}`
  }
  const nm = url.lastIndexOf('/node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return `npm:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`
  const src = url.match(/\/(?:dist\/)?(src\/[^/]+)\//)
  if (src) return `goalpost:${src[1]}`
  return url.startsWith('file:') ? 'other-js' : `node:${url.split('/')[0]}`
}

export function summariseProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i + 1] ?? 0 // a sample's time runs until the next one
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + Math.max(0, delta))
  }
  const cats = new Map<string, number>()
  const funcs = new Map<string, { name: string; where: string; us: number }>()
  let busy = 0
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame
    const cat = category(frame)
    cats.set(cat, (cats.get(cat) ?? 0) + us)
    if (cat === '(idle)') continue
    busy += us
    const where = frame.url ? `${frame.url.replace(/^file:\/\/.*?\/(node_modules|dist|src)\//, '$1/')}:${frame.lineNumber + 1}` : ''
    const key = `${frame.functionName}@${where}`
    const f = funcs.get(key) ?? { name: frame.functionName || '(anonymous)', where, us: 0 }
    f.us += us
    funcs.set(key, f)
  }
  const pct = (us: number) => (busy > 0 ? (100 * us) / busy : 0)
  return {
    file,
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: busy / 1000,
    categories: [...cats]
      .filter(([name]) => name !== '(idle)')
      .map(([name, us]) => ({ name, ms: us / 1000, pct: pct(us) }))
      .sort((a, b) => b.ms - a.ms),
    functions: [...funcs.values()]
      .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000, pct: pct(f.us) }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top),
  }
}

export function formatSummary(s: ProfileSummary, topCategories = 15, topFunctions = 20): string {
  const lines = [
    `${path.basename(s.file)}: wall ${(s.wallMs / 1000).toFixed(1)} s, on-CPU (JS thread, not idle) ${(s.busyMs / 1000).toFixed(1)} s`,
    '  self time by category:',
    ...s.categories.slice(0, topCategories).map((c) => `    ${c.pct.toFixed(1).padStart(5)}%  ${(c.ms / 1000).toFixed(2).padStart(7)} s  ${c.name}`),
    '  hottest functions (self):',
    ...s.functions.slice(0, topFunctions).map((f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`),
  ]
  return lines.join('\n')
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  for (const file of process.argv.slice(2)) console.log(formatSummary(summariseProfile(file, 40), 25, 40), '\n')
}
