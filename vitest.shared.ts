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
    },
  });
}
