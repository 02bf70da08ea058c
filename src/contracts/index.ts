export * from './codec.ts';
export * from './schemas.ts';
export type * from './types.gen.ts';
