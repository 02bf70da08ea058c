// A tiny HTTP server on 127.0.0.1 that answers like Confluent Schema Registry, from recorded
// responses (bodies and error codes as documented in Confluent's API reference:
// https://docs.confluent.io/platform/current/schema-registry/develop/api.html). Each test
// installs the routes it needs and reads back the requests the client made.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  status: number;
  body?: unknown;
  /** Never answer (to test timeouts). */
  hang?: boolean;
}

export interface SeenRequest {
  method: string;
  path: string;
  contentType: string | undefined;
  body: unknown;
}

type Route = (req: SeenRequest) => Recorded;

/** Recorded Confluent answers used across the tests. */
export const RECORDED = {
  subjectNotFound: (subject: string): Recorded => ({
    status: 404,
    body: { error_code: 40401, message: `Subject '${subject}' not found.` },
  }),
  schemaNotFound: (id: number): Recorded => ({
    status: 404,
    body: { error_code: 40403, message: `Schema ${id} not found` },
  }),
  incompatible: (subject: string): Recorded => ({
    status: 409,
    body: {
      error_code: 409,
      message: `Schema being registered is incompatible with an earlier schema for subject "${subject}", details: [{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'region' at path '/fields/4' in the new schema has no default value and is missing in the old schema'}]`,
    },
  }),
  invalidSchema: (): Recorded => ({
    status: 422,
    body: { error_code: 42201, message: 'Either the input schema or one its references is invalid' },
  }),
  backendError: (): Recorded => ({
    status: 500,
    body: { error_code: 50001, message: 'Error in the backend data store' },
  }),
};

export class FakeRegistry {
  readonly requests: SeenRequest[] = [];
  readonly routes = new Map<string, Route>();
  #server: Server | undefined;
  #hanging: { destroy(): void }[] = [];
  url = '';

  /** Installs an answer for `METHOD /path` (query string ignored). */
  on(method: string, path: string, answer: Recorded | Route): this {
    this.routes.set(`${method} ${path}`, typeof answer === 'function' ? answer : () => answer);
    return this;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      void readBody(req).then((text) => {
        const path = (req.url ?? '/').split('?')[0] ?? '/';
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {}
        const seen = { method: req.method ?? '', path, contentType: req.headers['content-type'], body };
        this.requests.push(seen);
        const route = this.routes.get(`${seen.method} ${path}`);
        const answer: Recorded = route?.(seen) ?? {
          status: 404,
          body: { error_code: 404, message: 'HTTP 404 Not Found' },
        };
        if (answer.hang) {
          this.#hanging.push(res);
          return;
        }
        res.writeHead(answer.status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
        res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const h of this.#hanging) h.destroy();
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
