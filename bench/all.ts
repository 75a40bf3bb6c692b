/**
 * `npm run bench [-- ingest flags]`: bench/ingest.ts with the given flags, then
 * bench/engine.ts (configured by BENCH_ENGINE_* environment variables), then
 * bench/history.ts (BENCH_HISTORY_*; BENCH_HISTORY=0 skips it). npm
 * appends `--` arguments to the end of a script, so a plain
 * `tsx bench/ingest.ts && tsx bench/engine.ts` would hand them to the engine
 * bench; this keeps them going to the ingest bench as before.
 */
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const dir = path.dirname(fileURLToPath(import.meta.url))
// Ctrl-C reaches the benches too (same process group): let them clean up and exit.
for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => {})
const args = process.argv.slice(2)
const run = (file: string, a: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(dir, file), ...a], { stdio: 'inherit' }).status ?? 1
const ingest = run('ingest.ts', args)
if (ingest !== 0 || args.includes('--help') || args.includes('-h')) process.exit(ingest)
const engine = run('engine.ts', [])
if (engine !== 0 || process.env.BENCH_HISTORY === '0') process.exit(engine)
process.exit(run('history.ts', []))
