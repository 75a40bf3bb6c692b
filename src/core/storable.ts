/**
 * Text Postgres can store: `text` and `jsonb` refuse a NUL character, and an
 * unpaired UTF-16 surrogate has no UTF-8 form (node-pg would send U+FFFD in
 * its place, so a lookup would silently ask about another string).
 */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

export const isStorableText = (s: string): boolean => !UNSTORABLE.test(s)

export const UNSTORABLE_TEXT = 'contains a NUL character or an unpaired UTF-16 surrogate, which cannot be stored'
