// The emulator's env, read once: endpoints, the account key, the root token, the subscription.
// Every module of the cross-client check takes them from here; without them the run stops at once
// (exit 2) with one JSON line saying which are missing.

import { randomBytes } from "node:crypto";

const ENV_KEYS = [
  "REPLICATOR_BLOB_ENDPOINT",
  "REPLICATOR_ACCOUNT_KEY",
  "REPLICATOR_ACCESS_TOKEN",
  "REPLICATOR_ARM_ENDPOINT",
  "AZURE_SUBSCRIPTION_ID",
];
const missing = ENV_KEYS.filter((key) => !process.env[key]);
if (missing.length) {
  console.log(JSON.stringify({ checks: [], failed: 1, error: `missing env: ${missing.join(", ")}` }));
  process.exit(2);
}

export const BLOB = process.env.REPLICATOR_BLOB_ENDPOINT.replace(/\/$/, "");
export const ARM = process.env.REPLICATOR_ARM_ENDPOINT.replace(/\/$/, "");
export const KEY = process.env.REPLICATOR_ACCOUNT_KEY;
export const TOKEN = process.env.REPLICATOR_ACCESS_TOKEN;
export const SUB = process.env.AZURE_SUBSCRIPTION_ID;
export const RUN = randomBytes(5).toString("hex"); // unique names: the session emulator is shared
