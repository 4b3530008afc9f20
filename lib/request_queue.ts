/**
 * A model's request queue: requests run one at a time in call order. Robotics code calls one
 * model from several loops; first-come-first-served with a bounded wait list is what such
 * callers expect, where rejecting whoever arrives while the engine is busy made the outcome of
 * concurrent asks depend on timing.
 */
import { RequestAbortedError, RequestQueueFullError, invalidArgument } from './errors';

/** Default of `maxQueuedRequests` ({@link LoadOptions}). */
export const DEFAULT_MAX_QUEUED_REQUESTS = 64;

interface Waiter {
  start: () => void;
}

/** @internal FIFO of requests on one model. */
export class RequestQueue {
  private running = false;
  private readonly waiting: Waiter[] = [];

  constructor(private readonly maxWaiting: number) {
    if (!Number.isInteger(maxWaiting) || maxWaiting < 0) throw invalidArgument('a non-negative integer', 'maxQueuedRequests', maxWaiting);
  }

  /**
   * Runs `work` after every request queued before it. A request that has to wait is dropped
   * when `signal` aborts (already aborted included) and rejects with
   * {@link RequestAbortedError}; a request that starts at once, or has started, leaves the
   * signal to `work` (generation ends with `stopReason: 'aborted'`).
   */
  async run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.running) await this.wait(signal);
    else this.running = true;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next.start(); // hand over the slot: `running` stays true
      else this.running = false;
    }
  }

  private wait(signal: AbortSignal | undefined): Promise<void> {
    if (this.waiting.length >= this.maxWaiting) {
      return Promise.reject(new RequestQueueFullError(
        `Expected at most ${this.maxWaiting} requests waiting on this model (maxQueuedRequests) but received one more. ` +
          'Fix: await earlier requests before making more, or load with a larger maxQueuedRequests.'));
    }
    if (signal?.aborted) return Promise.reject(new RequestAbortedError());
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new RequestAbortedError());
      };
      const waiter: Waiter = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }
}
