export * from './changelog.ts';
export * from './entry-codec.ts';
export * from './memory-store.ts';
export * from './merge.ts';
export * from './operator.ts';
export * from './task.ts';
export * from './types.ts';
