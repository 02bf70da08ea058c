export * from './checkpoint.ts';
export * from './parts.ts';
export * from './progress.ts';
export * from './replay.ts';
export * from './sinks.ts';
export * from './task-run.ts';
export * from './time.ts';
