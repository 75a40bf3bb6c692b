/**
 * `npm run bench [-- ingest flags]`: bench/ingest.ts with the given flags, then
 * bench/engine.ts (configured by BENCH_ENGINE_* environment variables). npm
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
process.exit(run('engine.ts', []))
