/** Segments (R24): each entry, and the check that references between them make no cycle. */
import { z } from 'zod'
import type { SegmentDef } from '../model.ts'
import { personCondition } from './conditions.ts'
import { isMapping, key, match, rawKeyOf, rawList, strict, text, type Problem } from './shared.ts'

export function segmentSchema() {
  return strict({ key, name: text.optional(), match, conditions: z.array(personCondition()).min(1) }).transform(
    (s): SegmentDef => ({ key: s.key, name: s.name ?? s.key, match: s.match, conditions: s.conditions }),
  )
}

/** R24: segments reference segments without cycles. Each cycle is named once, where it starts. */
export function segmentCycles(doc: Record<string, unknown>): Problem[] {
  const edges = new Map<string, Array<{ to: string; path: PropertyKey[] }>>()
  rawList(doc, 'segments').forEach((s, i) => {
    const k = rawKeyOf(s)
    if (k === null || edges.has(k)) return
    const list: Array<{ to: string; path: PropertyKey[] }> = []
    if (isMapping(s) && Array.isArray(s.conditions))
      s.conditions.forEach((c, j) => {
        if (isMapping(c) && typeof c.segment === 'string') list.push({ to: c.segment, path: ['segments', i, 'conditions', j, 'segment'] })
      })
    edges.set(k, list)
  })
  const state = new Map<string, 'open' | 'done'>()
  const stack: Array<{ node: string; via: PropertyKey[] | null }> = []
  const problems: Problem[] = []
  const visit = (node: string) => {
    state.set(node, 'open')
    for (const edge of edges.get(node) ?? []) {
      stack.push({ node, via: edge.path })
      const s = state.get(edge.to)
      if (s === 'open') {
        const start = stack.findIndex((f) => f.node === edge.to)
        const names = [...stack.slice(start).map((f) => f.node), edge.to]
        problems.push({ path: stack[start].via!, message: `cycle ${names.join(' -> ')}` })
      } else if (s === undefined && edges.has(edge.to)) visit(edge.to)
      stack.pop()
    }
    state.set(node, 'done')
  }
  for (const node of edges.keys()) if (!state.has(node)) visit(node)
  return problems
}
