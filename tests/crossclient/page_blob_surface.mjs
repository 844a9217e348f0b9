// A client nobody here wrote, against the emulator: Microsoft's @azure/storage-blob (pinned in
// package.json) and plain fetch for ARM drive the page-blob, diff, copy and managed-disk surface the
// replicator relies on, and every answer is compared with this script's own model of the bytes
// (page_model.mjs; it shares no code and no rules with the emulator).
//
// Reads the emulator's env (REPLICATOR_BLOB_ENDPOINT, REPLICATOR_ACCOUNT_KEY, REPLICATOR_ACCESS_TOKEN,
// REPLICATOR_ARM_ENDPOINT, AZURE_SUBSCRIPTION_ID; the CA in NODE_EXTRA_CA_CERTS), prints ONE JSON
// document {"checks": [{name, ok, detail}], "failed": N} and exits 1 when a check failed (2 when the
// env is incomplete). tests/crossclient/test_js_client.py runs it in the default suite; alone:
//   set -a; . /tmp/emu.env; set +a
//   NODE_EXTRA_CA_CERTS=$SSL_CERT_FILE node tests/crossclient/page_blob_surface.mjs
//
// Every expected error is Azure's documented status and code ("Azure Blob Storage error codes",
// "Put Page", "Get Blob", "Lease Blob", "SAS error codes"), never the emulator's own choices, so
// the same script could run against a real account.
//
// Modules: env.mjs (the env), checks.mjs (recording and assertions), page_model.mjs (the oracle),
// blob_helpers.mjs, arm_client.mjs, and the three groups of checks below.

import { checks, section } from "./checks.mjs";
import { leasesConditionsErrors } from "./lease_and_error_checks.mjs";
import { managedDiskFlow } from "./managed_disk_checks.mjs";
import { pageBlobSurface } from "./page_blob_checks.mjs";

const surface = await section("page blob surface", pageBlobSurface);
if (surface) await section("leases, conditions and errors", () => leasesConditionsErrors(surface));
await section("managed disk flow", managedDiskFlow);
const failed = checks.filter((c) => !c.ok).length;
console.log(JSON.stringify({ checks, failed }, null, 1));
process.exit(failed ? 1 : 0);
