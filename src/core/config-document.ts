// Kept for src/http/admin-routes.ts; import from ./config-document/index.ts.
export * from './config-document/index.ts'
