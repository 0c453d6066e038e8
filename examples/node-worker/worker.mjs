// A worker for AnyFormat Relay's streams in Node.js, following docs/workers.md step by step:
// a consumer group, the ack after the handler, retries after the documented backoff using
// Redis's delivery count, dead letters through the relay_v1 function (FCALL), and the
// take-over of a dead consumer's entries (XAUTOCLAIM) while our own are kept (XCLAIM JUSTID).
//
// Configuration (environment): REDIS_URL, STREAM, GROUP, CONSUMER, MAX_ATTEMPTS (5),
// BACKOFF_BASE and BACKOFF_MAX (seconds: 1, 60), CLAIM_IDLE (seconds: 60), CONCURRENCY (10).
// The handler is handler.mjs's `handle(event)`: return = done; throw = retry;
// throw new Reject(reason) = dead-letter now.
import { hostname } from "node:os";
import Redis from "ioredis";
import calculateSlot from "cluster-key-slot";
import { handle, Reject } from "./handler.mjs";

const env = process.env;
const config = {
  url: env.REDIS_URL ?? "redis://localhost:6379/0",
  stream: env.STREAM ?? "anyformat:events",
  group: env.GROUP ?? "node-worker",
  consumer: env.CONSUMER ?? `${hostname()}-${process.pid}`,
  maxAttempts: Number(env.MAX_ATTEMPTS ?? 5),
  backoffBase: Number(env.BACKOFF_BASE ?? 1),
  backoffMax: Number(env.BACKOFF_MAX ?? 60),
  claimIdleMs: Math.round(Number(env.CLAIM_IDLE ?? 60) * 1000),
  concurrency: Number(env.CONCURRENCY ?? 10),
};
const dlq = `${config.stream}:dlq`;
const redis = new Redis(config.url, { maxRetriesPerRequest: null });
const held = new Set(); // entry ids this consumer is working on (running or waiting)
let stopping = false;

const log = (msg, fields = {}) =>
  process.stdout.write(JSON.stringify({ msg, consumer: config.consumer, ...fields }) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The key Redis Cluster hashes: the first non-empty {...}, else the whole key.
function hashTag(key) {
  const start = key.indexOf("{");
  if (start !== -1) {
    const end = key.indexOf("}", start + 1);
    if (end > start + 1) return key.slice(start + 1, end);
  }
  return key;
}
const dlqMarks = `relay:dedupe:{${hashTag(dlq)}}:${dlq}`;
const dlqRecords = `relay:trail:{${hashTag(dlq)}}:${dlq}`;
// On one Redis every key is "in the same slot"; on a Cluster only a hash-tagged stream
// shares its DLQ's slot, and then the dead-letter call acknowledges too.
const ackInCall = env.REDIS_CLUSTER !== "true" || calculateSlot(config.stream) === calculateSlot(dlq);

// docs/workers.md rule 4: between half and all of min(max, base * 2^(attempt-1)) seconds.
function backoffMs(failedAttempt) {
  const ceiling = Math.min(config.backoffMax, config.backoffBase * 2 ** (failedAttempt - 1));
  return (ceiling / 2 + Math.random() * (ceiling / 2)) * 1000;
}

function pairs(flat) {
  const fields = {};
  for (let i = 0; i < flat.length; i += 2) fields[flat[i]] = flat[i + 1];
  return fields;
}

async function ensureGroup(startId = "0") {
  try {
    await redis.xgroup("CREATE", config.stream, config.group, startId, "MKSTREAM");
  } catch (err) {
    if (!String(err.message).includes("BUSYGROUP")) throw err;
  }
}

// Rule 6: one idempotent FCALL; the XACK follows only when the call could not make it.
async function deadLetter(entryId, fields, attempts, error) {
  const keys = ackInCall ? [dlq, dlqMarks, dlqRecords, config.stream] : [dlq, dlqMarks, dlqRecords];
  const flat = Object.entries(fields).flat();
  const args = [config.group, entryId, error, String(attempts), ...flat];
  const [dlqId] = await redis.call("FCALL", "relay_dead_letter_v1", keys.length, ...keys, ...args);
  if (!ackInCall) await redis.xack(config.stream, config.group, entryId);
  log("dead_lettered", { entry_id: entryId, dlq_id: dlqId, attempts, error });
}

async function deliveries(entryId) {
  const [row] = await redis.xpending(config.stream, config.group, entryId, entryId, 1);
  return row ? Number(row[3]) : 0;
}

async function process_(entryId, fields, attempt) {
  if (held.has(entryId)) return; // ours already (taken over from ourselves)
  held.add(entryId);
  try {
    if (attempt > config.maxAttempts) {
      return await deadLetter(entryId, fields, attempt - 1,
        "no outcome after the last attempt: the consumer handling it died");
    }
    let payload;
    try {
      payload = JSON.parse(fields.payload);
    } catch {
      return await deadLetter(entryId, fields, attempt, "malformed entry: payload is not JSON");
    }
    for (;;) {
      const event = { ...fields, payload, entryId, attempt, stream: config.stream };
      log("attempt", { entry_id: entryId, id: fields.id, attempt });
      try {
        await handle(event);
        await redis.xack(config.stream, config.group, entryId); // rule 3: after the handler
        log("handled", { entry_id: entryId, id: fields.id, attempt, replayed_from: fields.replayed_from });
        return;
      } catch (err) {
        const error = err instanceof Reject ? `Reject: ${err.message}` : `${err.name}: ${err.message}`;
        if (err instanceof Reject || attempt >= config.maxAttempts) {
          return await deadLetter(entryId, fields, attempt, error);
        }
        const wait = backoffMs(attempt);
        log("retry_scheduled", { entry_id: entryId, attempt, retry_in_ms: Math.round(wait), error });
        await sleep(wait);
        if (stopping) return; // left pending: taken over later
        // Re-claim for the next attempt: that increments the delivery count (the attempt).
        const claimed = await redis.xclaim(config.stream, config.group, config.consumer, 0, entryId);
        if (claimed.length === 0 || claimed[0] === null) {
          await redis.xack(config.stream, config.group, entryId);
          return log("entry_lost", { entry_id: entryId, reason: "deleted while waiting" });
        }
        attempt = await deliveries(entryId);
      }
    }
  } finally {
    held.delete(entryId);
  }
}

async function readLoop() {
  while (!stopping) {
    const room = config.concurrency - held.size;
    if (room <= 0) { await sleep(50); continue; }
    let reply;
    try {
      reply = await redis.xreadgroup("GROUP", config.group, config.consumer, "COUNT", room,
        "BLOCK", 2000, "STREAMS", config.stream, ">");
    } catch (err) {
      if (String(err.message).includes("NOGROUP")) { await ensureGroup(); continue; }
      throw err;
    }
    for (const [, entries] of reply ?? []) {
      for (const [entryId, flat] of entries) process_(entryId, pairs(flat), 1).catch(fail);
    }
  }
}

// Rule 5: take over what dead consumers left idle; keep our own claimed meanwhile.
async function claimLoop() {
  let cursor = "0-0";
  while (!stopping) {
    const [next, entries, deleted] = await redis.xautoclaim(config.stream, config.group,
      config.consumer, config.claimIdleMs, cursor, "COUNT", 100);
    for (const entryId of deleted ?? []) {
      await redis.xack(config.stream, config.group, entryId);
      log("entry_lost", { entry_id: entryId, reason: "deleted before it was handled" });
    }
    for (const [entryId, flat] of entries) {
      if (held.has(entryId)) continue;
      log("entry_taken_over", { entry_id: entryId });
      deliveries(entryId).then((n) => process_(entryId, pairs(flat), n)).catch(fail);
    }
    cursor = next;
    if (cursor === "0-0") await sleep(Math.min(config.claimIdleMs / 2, 5000));
  }
}

async function heartbeatLoop() {
  while (!stopping) {
    await sleep(config.claimIdleMs / 3);
    const ids = [...held];
    for (let i = 0; i < ids.length; i += 1000) {
      await redis.xclaim(config.stream, config.group, config.consumer, 0, ...ids.slice(i, i + 1000), "JUSTID");
    }
  }
}

function fail(err) {
  log("worker_failed", { error: String(err?.stack ?? err) });
  process.exit(1);
}

process.on("SIGTERM", () => { stopping = true; });
process.on("SIGINT", () => { stopping = true; });

await ensureGroup();
log("worker_started", { stream: config.stream, group: config.group });
await Promise.all([readLoop(), claimLoop(), heartbeatLoop()]).catch(fail);
while (held.size > 0) await sleep(50); // let handlers in flight finish
await redis.quit();
log("worker_stopped");
