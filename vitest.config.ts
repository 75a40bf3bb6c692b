import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The fault suite (npm run test:faults) kills and restarts private servers: run apart.
    exclude: ['test/faults/**', '**/node_modules/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Every file has its own database (cloned from a migrated template) and
    // queue prefix, so files run in parallel; 2 at a time suits a 2-core box.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
