export * from './client.ts';
export * from './serde.ts';
