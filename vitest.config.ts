import { defineConfig } from 'vitest/config';

// The root config only lists projects; each package has its own vitest.config.ts.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
  },
});
