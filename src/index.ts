/**
 * The public API of the rankdistill package (`import { … } from 'rankdistill'`).
 * One export line per module; each owner adds its own.
 */
export * from './client/index.ts';
export * from './labels/index.ts';
export * from './registry/index.ts';
