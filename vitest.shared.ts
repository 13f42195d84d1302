import { defaultServerConditions } from 'vite';
import { defineProject, type UserWorkspaceConfig } from 'vitest/config';

/** One shared Vitest project config: tests resolve workspace packages from source. */
export function daxlabProject(name: string): UserWorkspaceConfig {
  return defineProject({
    resolve: { conditions: ['@daxlab/source'] },
    ssr: { resolve: { conditions: ['@daxlab/source', ...defaultServerConditions] } },
    test: {
      name,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      setupFiles: ['reflect-metadata'],
      environment: 'node',
      // A hang guard, not a timing assertion: exhaustive explorations and spawned CLI runs take
      // seconds on a loaded 2-core CI machine (Vitest's 5 s default failed there).
      testTimeout: 60_000,
    },
  });
}
