import { defineConfig } from 'vitest/config'

/**
 * The fault suite (`npm run test:faults`, run by .ci/run after `npm test`):
 * private Redis and Postgres instances are killed, stopped and restarted
 * under load, so its files run one at a time and take minutes, not seconds.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
})
