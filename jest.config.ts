import type { Config } from 'jest';

/** Jest runs the TypeScript specs directly through ts-jest; the CLI specs spawn the built `dist/` (see `pretest`). */
const config: Config = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/spec'],
  testMatch: ['**/*.test.ts'],
  // Real servers and real buildah builds: give each test room, never rely on it for waiting.
  testTimeout: 60_000,
  // Two cores: run two files at a time so buildah builds and servers do not starve each other.
  maxWorkers: 2,
  // Jest's own summary, then one plain `N passed, N failed` line for tools that read the closing line.
  reporters: ['default', '<rootDir>/spec/reporters/plain-summary.js'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
};

export default config;
