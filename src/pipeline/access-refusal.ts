/**
 * The one failure a labeler member does not recover from: the cluster refused its credentials or
 * an ACL. Rejoining would fail the same way forever, so the failure is explained once (naming the
 * missing permission) and surfaced through `LabelService.failed()`; the process should exit.
 */
import type { Config } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import { explainKafkaError, kafkaAccessFailure } from '../kafka/access.ts';
import { aclsForRole } from '../kafka/acls.ts';
import type { Logger } from '../log.ts';

/** Watches a member's failures for a refusal of access. */
export class AccessRefusal {
  /** Rejected with the explained error when the cluster refuses our credentials or an ACL. */
  readonly refused: Promise<never>;
  #reject: (e: unknown) => void = () => undefined;
  #seen = false;
  readonly #config: Config;
  readonly #log: Logger;

  constructor(config: Config, log: Logger) {
    this.#config = config;
    this.#log = log;
    this.refused = new Promise<never>((_resolve, reject) => {
      this.#reject = reject;
    });
    this.refused.catch(() => undefined); // observed through LabelService.failed()
  }

  /**
   * Whether `e` is a refusal of access (an authentication or authorization failure, not a lost
   * connection): `first` makes {@link refused} reject with it, explained; `again` for a later one
   * (however many tasks fail, one explanation); undefined for any other failure.
   */
  check(e: unknown): 'first' | 'again' | undefined {
    const access = kafkaAccessFailure(e);
    if (access === undefined || access.kind === 'connection') return undefined;
    if (this.#seen) return 'again';
    this.#seen = true;
    void explainKafkaError(e, {
      kafka: this.#config.kafka,
      grants: aclsForRole('labeler', this.#config),
      role: 'labeler',
    }).then((err) => {
      this.#log.error('the cluster refused access; stopping', { error: errorMessage(err) });
      this.#reject(err);
    });
    return 'first';
  }
}
