export * from './generate.ts';
export * from './malformed.ts';
export * from './mix.ts';
export * from './oracle.ts';
export * from './rng.ts';
export * from './simulate.ts';
export * from './world.ts';
