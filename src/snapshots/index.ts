/** Published snapshots of the student: atomic write, checksums, gate, registry, announcements, recall. */
export * from './announcer.ts';
export * from './gate.ts';
export * from './manifest.ts';
export * from './publisher.ts';
export * from './recall.ts';
export * from './registry.ts';
export * from './store.ts';
export * from './student.ts';
export * from './table.ts';
export * from './tfjs.ts';
export * from './trainer.ts';
