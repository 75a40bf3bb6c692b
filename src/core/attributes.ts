/**
 * Person attributes (vocabulary: attribute): `identify` traits shallow-merge
 * onto the person, and a `null` value removes the key.
 */
export type Attributes = Record<string, unknown>

/**
 * Folds trait updates, in processing order (R2), onto `base`. Returns a new
 * object; neither input is changed.
 */
export function foldTraits(base: Attributes, updates: Iterable<Attributes>): Attributes {
  const result: Attributes = { ...base }
  for (const traits of updates) {
    for (const [key, value] of Object.entries(traits)) {
      if (value === null) delete result[key]
      else result[key] = value
    }
  }
  return result
}
