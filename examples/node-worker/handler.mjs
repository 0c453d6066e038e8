// The example's business logic. A real worker replaces `handle`; the contract stays:
// return when done, throw to retry, throw new Reject(reason) to dead-letter at once.
// Make it idempotent on `event.id`: an entry can be delivered more than once.
export class Reject extends Error {
  constructor(reason) {
    super(reason);
    this.name = "Reject";
  }
}

// For the demonstration (and the interop tests): extraction ids matching these patterns
// fail every attempt, are rejected, or hang (a handler that never returns).
const pattern = (name) => (process.env[name] ? new RegExp(process.env[name]) : null);
const failing = pattern("FAIL_MATCHING");
const rejecting = pattern("REJECT_MATCHING");
const hanging = pattern("HANG_MATCHING");

export async function handle(event) {
  const data = event.payload.data ?? {};
  const extraction = String(data.extraction_id ?? "");
  if (!extraction) throw new Reject("no extraction id");
  if (rejecting?.test(extraction)) throw new Reject(`refused ${extraction}`);
  if (failing?.test(extraction)) throw new Error(`downstream refused ${extraction}`);
  if (hanging?.test(extraction)) {
    process.stdout.write(JSON.stringify({ msg: "hanging", entry_id: event.entryId }) + "\n");
    await new Promise(() => {});
  }
  // ... the real work: bill the extraction, notify, index ...
}
