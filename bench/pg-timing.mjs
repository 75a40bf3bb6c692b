// Preloaded (node --import) into a goalpost process by `npm run bench -- --pg-timing`:
// times every SQL statement sent through node-postgres (client side: from the
// query call to its callback, so it includes the round trip and any time the
// statement waits on a lock), grouped by the statement's normalised text, and
// writes the totals as JSON to $BENCH_PG_TIMING_OUT when the process exits.
// Changes nothing in goalpost itself: it wraps pg.Client.prototype.query.
import { writeFileSync } from 'node:fs'
import pg from 'pg'

const out = process.env.BENCH_PG_TIMING_OUT
const stats = new Map()
const startedAt = Date.now()

const keyOf = (text) => text.replace(/\s+/g, ' ').trim().slice(0, 160)

function record(text, t0, paramBytes, err) {
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  const key = keyOf(text)
  let s = stats.get(key)
  if (!s) stats.set(key, (s = { sql: key, calls: 0, totalMs: 0, maxMs: 0, errors: 0, paramBytes: 0, hist: [0, 0, 0, 0, 0, 0, 0] }))
  s.calls++
  s.totalMs += ms
  s.paramBytes += paramBytes
  if (ms > s.maxMs) s.maxMs = ms
  if (err) s.errors++
  // <1, <2, <5, <10, <50, <200, >=200 ms
  const b = ms < 1 ? 0 : ms < 2 ? 1 : ms < 5 ? 2 : ms < 10 ? 3 : ms < 50 ? 4 : ms < 200 ? 5 : 6
  s.hist[b]++
}

const paramSize = (values) => {
  if (!Array.isArray(values)) return 0
  let n = 0
  for (const v of values) n += typeof v === 'string' ? v.length : 0
  return n
}

const original = pg.Client.prototype.query
pg.Client.prototype.query = function (config, values, callback) {
  const text = typeof config === 'string' ? config : config?.text
  if (typeof text !== 'string') return original.apply(this, arguments)
  const t0 = process.hrtime.bigint()
  const bytes = paramSize(Array.isArray(values) ? values : config?.values)
  if (typeof values === 'function') {
    const cb = values
    return original.call(this, config, (err, res) => {
      record(text, t0, bytes, err)
      cb(err, res)
    })
  }
  if (typeof callback === 'function') {
    return original.call(this, config, values, (err, res) => {
      record(text, t0, bytes, err)
      callback(err, res)
    })
  }
  const result = original.apply(this, arguments)
  if (result && typeof result.then === 'function')
    result.then(
      () => record(text, t0, bytes),
      (err) => record(text, t0, bytes, err),
    )
  return result
}

function dump() {
  if (!out) return
  try {
    writeFileSync(out, JSON.stringify({ pid: process.pid, startedAt, endedAt: Date.now(), statements: [...stats.values()] }))
  } catch {}
}
process.on('exit', dump)
setInterval(dump, 2_000).unref()
