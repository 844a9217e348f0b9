// A client nobody here wrote, against the emulator: Microsoft's @azure/storage-blob (pinned in
// package.json) and plain fetch for ARM drive the page-blob, diff, copy and managed-disk surface the
// replicator relies on, and every answer is compared with this script's own model of the bytes
// (PageModel below; it shares no code and no rules with the emulator).
//
// Reads the emulator's env (REPLICATOR_BLOB_ENDPOINT, REPLICATOR_ACCOUNT_KEY, REPLICATOR_ACCESS_TOKEN,
// REPLICATOR_ARM_ENDPOINT, AZURE_SUBSCRIPTION_ID; the CA in NODE_EXTRA_CA_CERTS), prints ONE JSON
// document {"checks": [{name, ok, detail}], "failed": N} and exits 1 when a check failed (2 when the
// env is incomplete). tests/crossclient/test_js_client.py runs it in the default suite; alone:
//   set -a; . /tmp/emu.env; set +a; NODE_EXTRA_CA_CERTS=$SSL_CERT_FILE node tests/crossclient/page_blob_surface.mjs
//
// Every expected error is Azure's documented status and code ("Azure Blob Storage error codes",
// "Put Page", "Get Blob", "Lease Blob", "SAS error codes"), never the emulator's own choices, so
// the same script could run against a real account.

import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";

import {
  AnonymousCredential,
  BlobSASPermissions,
  BlobServiceClient,
  PageBlobClient,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from "@azure/storage-blob";

const PAGE = 512;
const MiB = 1024 * 1024;
const ARM_API = "2024-03-02";
const LRO_POLLS = 30; // the emulator finishes before its 202; a real ARM may take a few polls
// One try per request: a retried 5xx would hide an emulator fault this script exists to see.
const PIPELINE = { retryOptions: { maxTries: 1 } };

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
const BLOB = process.env.REPLICATOR_BLOB_ENDPOINT.replace(/\/$/, "");
const ARM = process.env.REPLICATOR_ARM_ENDPOINT.replace(/\/$/, "");
const KEY = process.env.REPLICATOR_ACCOUNT_KEY;
const TOKEN = process.env.REPLICATOR_ACCESS_TOKEN;
const SUB = process.env.AZURE_SUBSCRIPTION_ID;
const RUN = randomBytes(5).toString("hex"); // unique names: the session emulator is shared

// --- checks -------------------------------------------------------------------------------------

const checks = [];

/** Run one named check; it passes unless `body` throws. Its return value is the detail. */
async function check(name, body) {
  try {
    const detail = await body();
    checks.push({ name, ok: true, detail: detail ?? "" });
  } catch (e) {
    checks.push({ name, ok: false, detail: describe(e) });
  }
}

/** The error code of a failed call: the SDK's `code`, or for a HEAD (no body) the parsed
 * x-ms-error-code header in `details`. */
function errorCode(e) {
  return e.code ?? e.details?.errorCode;
}

function describe(e) {
  if (e?.statusCode !== undefined) return `${e.statusCode} ${errorCode(e) ?? ""}: ${String(e.message).split("\n")[0]}`;
  return String(e?.message ?? e);
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function expectSame(actual, expected, what) {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  expect(a === b, `${what}: got ${a.slice(0, 400)}, expected ${b.slice(0, 400)}`);
  return `${what}: ${b.length > 120 ? `${b.slice(0, 120)}...` : b}`;
}

function expectBytes(actual, expected, what) {
  expect(actual.length === expected.length, `${what}: ${actual.length} bytes, expected ${expected.length}`);
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  expect(at < 0, `${what}: first difference at byte ${at}`);
  return `${what}: ${actual.length} bytes equal`;
}

/** `call` must fail with exactly this HTTP status and error code (x-ms-error-code / ARM error.code). */
async function expectError(name, call, status, code) {
  await check(name, async () => {
    let outcome;
    try {
      await call();
    } catch (e) {
      outcome = e;
    }
    expect(outcome !== undefined, `succeeded; expected ${status} ${code ?? ""}`);
    expect(
      outcome.statusCode === status && (code === undefined || errorCode(outcome) === code),
      `got ${describe(outcome)}; expected ${status} ${code ?? ""}`,
    );
    return `${status} ${code ?? ""}`;
  });
}

// --- the oracle: the bytes and page history of a page blob, kept by this script alone --------

/** A page blob as a map page index -> {data (null: cleared), seq}; seq orders every write and clear,
 * so a snapshot (a frozen copy) knows which pages changed after it. */
class PageModel {
  constructor(size, pages = new Map(), seq = { n: 0 }) {
    this.size = size;
    this.pages = pages;
    this.clock = seq; // shared with the frozen copies: one order of events
    this.frozenAt = Infinity;
  }

  write(offset, data) {
    const op = ++this.clock.n;
    for (let at = 0; at < data.length; at += PAGE) {
      this.pages.set((offset + at) / PAGE, { data: data.slice(at, at + PAGE), seq: op });
    }
  }

  clear(offset, length) {
    const op = ++this.clock.n;
    for (let at = 0; at < length; at += PAGE) this.pages.set((offset + at) / PAGE, { data: null, seq: op });
  }

  freeze() {
    const copy = new PageModel(this.size, new Map(this.pages), this.clock);
    copy.frozenAt = this.clock.n;
    return copy;
  }

  read(offset, length) {
    const out = new Uint8Array(length);
    for (let page = Math.floor(offset / PAGE); page * PAGE < offset + length; page++) {
      const data = this.pages.get(page)?.data;
      if (!data) continue;
      const from = Math.max(offset, page * PAGE);
      const to = Math.min(offset + length, (page + 1) * PAGE);
      out.set(data.subarray(from - page * PAGE, to - page * PAGE), from - offset);
    }
    return out;
  }

  /** Valid ranges [start, end) in [from, to): written pages, adjacent ones joined. */
  valid(from = 0, to = this.size) {
    return runs(this, from, to, (entry) => (entry.data ? "data" : null));
  }

  /** Changed ranges since `base` (an older frozen copy of this blob): [start, end, cleared]. */
  diff(base, from = 0, to = this.size) {
    return runs(this, from, to, (entry) => (entry.seq > base.frozenAt ? (entry.data ? "data" : "clear") : null));
  }
}

function runs(model, from, to, kindOf) {
  const out = [];
  const pages = [...model.pages.keys()].filter((p) => p * PAGE >= from && (p + 1) * PAGE <= to);
  for (const page of pages.sort((a, b) => a - b)) {
    const kind = kindOf(model.pages.get(page));
    if (!kind) continue;
    const last = out.at(-1);
    if (last && last[1] === page * PAGE && last[2] === (kind === "clear")) last[1] += PAGE;
    else out.push([page * PAGE, (page + 1) * PAGE, kind === "clear"]);
  }
  return out;
}

/** Deterministic bytes (xorshift32 from a seed): a failure reproduces with the same data. */
function pattern(seed, length) {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** CRC-64/NVME (reflected 0x9A6C9329AC4BC9B5, init and xorout all ones), Azure Storage's CRC64,
 * as the eight little-endian bytes `x-ms-content-crc64` carries. Written here from the parameters,
 * not taken from the SDK or the emulator. */
const CRC_TABLE = (() => {
  const table = new Array(256);
  for (let n = 0n; n < 256n; n++) {
    let crc = n;
    for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ 0x9a6c9329ac4bc9b5n : crc >> 1n;
    table[Number(n)] = crc;
  }
  return table;
})();

function crc64(data) {
  let crc = 0xffffffffffffffffn;
  for (const byte of data) crc = CRC_TABLE[Number((crc ^ BigInt(byte)) & 0xffn)] ^ (crc >> 8n);
  crc ^= 0xffffffffffffffffn;
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) out[i] = Number((crc >> BigInt(8 * i)) & 0xffn);
  return out;
}

function md5(data) {
  return new Uint8Array(createHash("md5").update(data).digest());
}

// --- SDK helpers -----------------------------------------------------------------------------

async function readAll(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return new Uint8Array(Buffer.concat(parts));
}

async function download(client, offset, count, options = {}) {
  const response = await client.download(offset, count, options);
  return { response, bytes: await readAll(response.readableStreamBody) };
}

/** A page of Get Page Ranges as [start, end, cleared] triples in offset order (the SDK splits
 * PageRange and ClearRange into two arrays; Azure interleaves them). Paged listings give Azure's
 * inclusive {start, end}; getPageRangesDiff* give {offset, count} where the SDK computes count as
 * end - start of the inclusive range, one less than the length (rangeResponseFromModel, 12.32). */
function pageOf(response) {
  const half = (r) => (r.offset === undefined ? [r.start, r.end + 1] : [r.offset, r.offset + r.count + 1]);
  const ranges = [
    ...(response.pageRange ?? []).map((r) => [...half(r), false]),
    ...(response.clearRange ?? []).map((r) => [...half(r), true]),
  ];
  return ranges.sort((a, b) => a[0] - b[0]);
}

/** Every page of a paged listing: the ranges, the page count; each page within `maxPageSize` and
 * carrying a continuation token unless it is the last. */
async function allPages(pager, maxPageSize) {
  const ranges = [];
  const pages = [];
  for await (const page of pager.byPage({ maxPageSize })) pages.push(page);
  pages.forEach((page, i) => {
    const got = pageOf(page);
    expect(got.length <= maxPageSize, `page ${i} holds ${got.length} ranges, more than ${maxPageSize}`);
    expect(Boolean(page.continuationToken) === (i < pages.length - 1), `page ${i}: continuation token wrong`);
    ranges.push(...got);
  });
  return { ranges, pages };
}

function sasFor(credential, container, blob, permissions, snapshotTime) {
  const sas = generateBlobSASQueryParameters(
    {
      containerName: container,
      blobName: blob,
      snapshotTime,
      permissions: BlobSASPermissions.parse(permissions),
      expiresOn: new Date(Date.now() + 3600 * 1000),
    },
    credential,
  );
  return sas.toString();
}

/** A raw GET signed as "Authorize with Shared Key" describes it, written here rather than by the
 * SDK: the SDK sends x-ms-range, while curl-like clients send the standard Range header, which has
 * its own slot in the string to sign (`rangeSlot` false leaves that slot empty, as a client that
 * forgot it would). The resource is /account + the path, which path-style URLs start with the
 * account again. */
async function sharedKeyGet(account, path, range, rangeSlot = true) {
  const headers = { "x-ms-date": new Date().toUTCString(), "x-ms-version": "2021-08-06", Range: range };
  const slots = ["Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type", "Date",
    "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since"];
  const canonical = Object.keys(headers)
    .filter((name) => name.startsWith("x-ms-"))
    .sort()
    .map((name) => `${name}:${headers[name]}\n`)
    .join("");
  const toSign = ["GET", ...slots.map(() => ""), rangeSlot ? range : ""].join("\n") + `\n${canonical}/${account}${path}`;
  const signature = createHmac("sha256", Buffer.from(KEY, "base64")).update(toSign, "utf8").digest("base64");
  return fetch(`${BLOB}${path}`, { headers: { ...headers, Authorization: `SharedKey ${account}:${signature}` } });
}

function tokenCredential(token) {
  return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600 * 1000 }) };
}

// --- 1. page blob: writes, clears, ranges with paging, snapshots, diffs, copies --------------

async function pageBlobSurface() {
  const account = `js${RUN}`;
  const key = new StorageSharedKeyCredential(account, KEY);
  const service = new BlobServiceClient(`${BLOB}/${account}`, key, PIPELINE);
  const container = service.getContainerClient("crossclient");
  const size = 8 * MiB;
  const blob = container.getPageBlobClient("disk.vhd");
  const model = new PageModel(size);

  await check("shared key: create container", () => container.create().then(() => "201"));
  await expectError("create container again", () => container.create(), 409, "ContainerAlreadyExists");
  await check("create page blob", async () => {
    const r = await blob.create(size);
    expect(r.etag, "no ETag");
    return `${size} bytes`;
  });

  // Scattered aligned writes: a first page, a crossing of the 1 MiB mark, a full 4 MiB write, the
  // last page, pages with gaps between them (so listings have many ranges to page through).
  const writes = [
    [0, PAGE],
    [4096, 8192],
    [MiB - PAGE, 3 * PAGE],
    [2 * MiB, 4 * MiB],
    [size - PAGE, PAGE],
    ...[0, 1, 2, 3, 4, 5, 6].map((i) => [6 * MiB + i * 4 * PAGE, PAGE * (1 + (i % 2))]),
  ];
  for (const [offset, length] of writes) {
    await check(`upload pages ${offset}+${length}`, async () => {
      const data = pattern(offset + length, length);
      await blob.uploadPages(data, offset, length);
      model.write(offset, data);
    });
  }
  await check("upload pages with Content-MD5 answers it", async () => {
    const data = pattern(11, 2 * PAGE);
    const r = await blob.uploadPages(data, 5 * MiB, data.length, { transactionalContentMD5: md5(data) });
    model.write(5 * MiB, data);
    return expectSame(Buffer.from(r.contentMD5 ?? []).toString("base64"), Buffer.from(md5(data)).toString("base64"), "Content-MD5");
  });
  await check("upload pages with x-ms-content-crc64 answers it", async () => {
    const data = pattern(12, 4 * PAGE);
    const r = await blob.uploadPages(data, 5 * MiB + 8 * PAGE, data.length, { transactionalContentCrc64: crc64(data) });
    model.write(5 * MiB + 8 * PAGE, data);
    return expectSame(Buffer.from(r.xMsContentCrc64 ?? []).toString("base64"), Buffer.from(crc64(data)).toString("base64"), "x-ms-content-crc64");
  });
  await check("upload pages as a structured body (contentChecksumAlgorithm StorageCrc64)", async () => {
    const data = pattern(13, 3 * PAGE);
    await blob.uploadPages(data, 5 * MiB + 16 * PAGE, data.length, { contentChecksumAlgorithm: "StorageCrc64" });
    model.write(5 * MiB + 16 * PAGE, data);
  });
  for (const [offset, length] of [[4096 + 2 * PAGE, 2 * PAGE], [3 * MiB, 4 * PAGE], [7 * MiB, 8 * PAGE]]) {
    await check(`clear pages ${offset}+${length}`, async () => {
      await blob.clearPages(offset, length);
      model.clear(offset, length);
    });
  }

  await check("get page ranges: every valid range", async () => {
    const got = [];
    for await (const r of blob.listPageRanges()) got.push([r.start, r.end + 1, false]);
    return expectSame(got, model.valid(), "ranges");
  });
  await check("get page ranges: paged by 2 with continuation tokens", async () => {
    const { ranges, pages } = await allPages(blob.listPageRanges(), 2);
    expect(pages.length > 1, `one page only for ${ranges.length} ranges`);
    expectSame(ranges, model.valid(), "ranges");
    return `${ranges.length} ranges in ${pages.length} pages`;
  });
  await check("get page ranges: resumed from a continuation token", async () => {
    const first = (await blob.listPageRanges().byPage({ maxPageSize: 3 }).next()).value;
    expect(first.continuationToken, "no continuation token after 3 ranges");
    const rest = [];
    for await (const page of blob.listPageRanges().byPage({ continuationToken: first.continuationToken, maxPageSize: 4 })) {
      rest.push(...pageOf(page));
    }
    return expectSame([...pageOf(first), ...rest], model.valid(), "ranges");
  });
  await check("get page ranges: a window clips the ranges", async () => {
    const got = [];
    for await (const r of blob.listPageRanges(MiB, 5 * MiB)) got.push([r.start, r.end + 1, false]);
    return expectSame(got, model.valid(MiB, 6 * MiB), "ranges");
  });

  await check("download: whole blob", async () => expectBytes((await download(blob, 0)).bytes, model.read(0, size), "blob"));
  for (const [offset, count] of [[100, 1000], [MiB - 700, 2048], [2 * MiB + 12345, 3 * MiB], [size - 10, 10]]) {
    await check(`download: range ${offset}+${count}`, async () => {
      const { response, bytes } = await download(blob, offset, count);
      expectSame(response.contentRange, `bytes ${offset}-${offset + count - 1}/${size}`, "Content-Range");
      return expectBytes(bytes, model.read(offset, count), "range");
    });
  }
  await check("download: x-ms-range-get-content-md5", async () => {
    const { response, bytes } = await download(blob, 4096, 8192, { rangeGetContentMD5: true });
    expectBytes(bytes, model.read(4096, 8192), "range");
    return expectSame(Buffer.from(response.contentMD5 ?? []).toString("hex"), Buffer.from(md5(bytes)).toString("hex"), "Content-MD5");
  });
  await check("download: x-ms-range-get-content-crc64", async () => {
    const { response, bytes } = await download(blob, 2 * MiB, MiB, { rangeGetContentCrc64: true });
    expectBytes(bytes, model.read(2 * MiB, MiB), "range");
    return expectSame(Buffer.from(response.contentCrc64 ?? []).toString("hex"), Buffer.from(crc64(bytes)).toString("hex"), "x-ms-content-crc64");
  });

  // Snapshots and diffs: s1, changes, s2, more changes on the live blob.
  let s1;
  let s2;
  let m1;
  let m2;
  await check("create snapshot 1", async () => {
    s1 = (await blob.createSnapshot()).snapshot;
    m1 = model.freeze();
    return s1;
  });
  await check("changes after snapshot 1", async () => {
    for (const [offset, length, seed] of [[4096, PAGE, 21], [2 * MiB + 3 * PAGE, 10 * PAGE, 22], [4 * MiB, 2 * PAGE, 23]]) {
      const data = pattern(seed, length);
      await blob.uploadPages(data, offset, length);
      model.write(offset, data);
    }
    await blob.clearPages(0, PAGE);
    model.clear(0, PAGE);
    await blob.clearPages(6 * MiB + 4 * PAGE, 8 * PAGE); // written and unwritten pages alike
    model.clear(6 * MiB + 4 * PAGE, 8 * PAGE);
  });
  await check("create snapshot 2", async () => {
    s2 = (await blob.createSnapshot()).snapshot;
    m2 = model.freeze();
    return s2;
  });
  await check("changes after snapshot 2", async () => {
    const data = pattern(31, 4 * PAGE);
    await blob.uploadPages(data, MiB, data.length);
    model.write(MiB, data);
    await blob.clearPages(2 * MiB, PAGE);
    model.clear(2 * MiB, PAGE);
  });

  const snap1 = blob.withSnapshot(s1 ?? "");
  const snap2 = blob.withSnapshot(s2 ?? "");
  await check("download snapshot 1 (unchanged by later writes)", async () =>
    expectBytes((await download(snap1, 0)).bytes, m1.read(0, size), "snapshot 1"));
  await check("page ranges of snapshot 2", async () => {
    const got = [];
    for await (const r of snap2.listPageRanges()) got.push([r.start, r.end + 1, false]);
    return expectSame(got, m2.valid(), "ranges");
  });
  await check("diff blob vs snapshot 1 (prevsnapshot), paged by 2", async () => {
    const { ranges, pages } = await allPages(blob.listPageRangesDiff(0, size, s1), 2);
    expectSame(ranges, model.diff(m1), "changed ranges");
    return `${ranges.length} ranges in ${pages.length} pages`;
  });
  await check("diff snapshot 2 vs snapshot 1 (prevsnapshot)", async () => {
    const got = [];
    for await (const r of snap2.listPageRangesDiff(0, size, s1)) got.push([r.start, r.end + 1, Boolean(r.isClear)]);
    return expectSame(got, m2.diff(m1), "changed ranges");
  });
  await check("diff snapshot 2 vs snapshot 1 in a window", async () => {
    const got = pageOf(await snap2.getPageRangesDiff(2 * MiB, 4 * MiB, s1));
    return expectSame(got, m2.diff(m1, 2 * MiB, 6 * MiB), "changed ranges");
  });
  const s1Sas = `${snap1.url}&${sasFor(key, "crossclient", "disk.vhd", "r", s1)}`;
  await check("diff snapshot 2 vs snapshot 1 by SAS URL (x-ms-previous-snapshot-url)", async () => {
    const got = pageOf(await snap2.getPageRangesDiffForManagedDisks(0, size, s1Sas));
    return expectSame(got, m2.diff(m1), "changed ranges");
  });
  await check("SAS (sr=bs): read snapshot 1 through its own SAS", async () => {
    const client = new PageBlobClient(s1Sas, new AnonymousCredential(), PIPELINE);
    return expectBytes((await download(client, 2 * MiB, MiB)).bytes, m1.read(2 * MiB, MiB), "range");
  });

  // Put Page From URL: a copy of snapshot 2 built from its SAS URL, range by range.
  const copy = container.getPageBlobClient("copy.vhd");
  const copied = new PageModel(size);
  const s2Sas = `${snap2.url}&${sasFor(key, "crossclient", "disk.vhd", "r", s2)}`;
  await check("put page from URL: valid ranges of snapshot 2, shifted by 512", async () => {
    await copy.create(size);
    let chunks = 0;
    for (const [start, end] of m2.valid(0, size - PAGE)) {
      for (let at = start; at < end; at += 4 * MiB) {
        const length = Math.min(4 * MiB, end - at);
        await copy.uploadPagesFromURL(s2Sas, at, at + PAGE, length);
        copied.write(at + PAGE, m2.read(at, length));
        chunks++;
      }
    }
    expectBytes((await download(copy, 0)).bytes, copied.read(0, size), "copy");
    return `${chunks} copies`;
  });
  await check("put page from URL: a source hole is written as zeros and becomes valid", async () => {
    await copy.uploadPagesFromURL(s2Sas, 6 * MiB + 4 * PAGE, 7 * MiB + 32 * PAGE, 8 * PAGE);
    copied.write(7 * MiB + 32 * PAGE, m2.read(6 * MiB + 4 * PAGE, 8 * PAGE));
    const got = [];
    for await (const r of copy.listPageRanges()) got.push([r.start, r.end + 1, false]);
    return expectSame(got, copied.valid(), "ranges");
  });
  await check("put page from URL with x-ms-source-content-md5 answers Content-MD5", async () => {
    const source = m2.read(2 * MiB, 4 * PAGE);
    const r = await copy.uploadPagesFromURL(s2Sas, 2 * MiB, 0, source.length, { sourceContentMD5: md5(source) });
    copied.write(0, source);
    return expectSame(Buffer.from(r.contentMD5 ?? []).toString("hex"), Buffer.from(md5(source)).toString("hex"), "Content-MD5");
  });
  await check("put page from URL with x-ms-source-content-crc64 answers x-ms-content-crc64", async () => {
    const source = m2.read(4096, 4 * PAGE);
    const r = await copy.uploadPagesFromURL(s2Sas, 4096, 4096, source.length, { sourceContentCrc64: crc64(source) });
    copied.write(4096, source);
    return expectSame(Buffer.from(r.xMsContentCrc64 ?? []).toString("hex"), Buffer.from(crc64(source)).toString("hex"), "x-ms-content-crc64");
  });
  await expectError(
    "put page from URL: a wrong source MD5",
    () => copy.uploadPagesFromURL(s2Sas, 0, 0, PAGE, { sourceContentMD5: md5(new Uint8Array(1)) }),
    400,
  );
  await check("copy equals its model after every copy", async () =>
    expectBytes((await download(copy, 0)).bytes, copied.read(0, size), "copy"));

  return { service, key, container, blob, model, account };
}

// --- 2. leases, conditional requests, error codes, bearer and SAS auth ---------------------

async function leasesConditionsErrors({ key, container, blob, model, account }) {
  const bearer = new BlobServiceClient(`${BLOB}/${account}`, tokenCredential(TOKEN), PIPELINE);
  const viaBearer = bearer.getContainerClient("crossclient").getPageBlobClient("disk.vhd");
  await check("bearer token: read what Shared Key wrote", async () =>
    expectBytes((await download(viaBearer, 2 * MiB, 64 * 1024)).bytes, model.read(2 * MiB, 64 * 1024), "range"));

  const path = `/${account}/crossclient/disk.vhd`;
  await check("raw Shared Key GET with the standard Range header signed in its slot", async () => {
    const response = await sharedKeyGet(account, path, "bytes=4096-12287");
    expectSame(response.status, 206, "status");
    expectSame(response.headers.get("content-range"), `bytes 4096-12287/${model.size}`, "Content-Range");
    return expectBytes(new Uint8Array(await response.arrayBuffer()), model.read(4096, 8192), "range");
  });
  await check("raw Shared Key GET with the Range slot left empty is refused", async () => {
    const response = await sharedKeyGet(account, path, "bytes=4096-12287", false);
    return expectSame([response.status, response.headers.get("x-ms-error-code")], [403, "AuthenticationFailed"], "answer");
  });

  const data = pattern(41, PAGE);
  const lease = blob.getBlobLeaseClient();
  let leaseId;
  await check("acquire a lease (15 s)", async () => {
    leaseId = (await lease.acquireLease(15)).leaseId;
    return expectSame(leaseId, lease.leaseId, "lease id");
  });
  await expectError("write without the lease id", () => blob.uploadPages(data, 0, PAGE), 412, "LeaseIdMissing");
  await expectError(
    "write with another lease id",
    () => blob.uploadPages(data, 0, PAGE, { conditions: { leaseId: randomUUID() } }),
    412,
    "LeaseIdMismatchWithBlobOperation",
  );
  await check("write with the lease id", async () => {
    await blob.uploadPages(data, 0, PAGE, { conditions: { leaseId } });
    model.write(0, data);
  });
  await expectError(
    "acquire a second lease",
    () => blob.getBlobLeaseClient(randomUUID()).acquireLease(15),
    409,
    "LeaseAlreadyPresent",
  );
  await check("release the lease", () => lease.releaseLease().then(() => "released"));
  await expectError(
    "write with a lease id after release",
    () => blob.uploadPages(data, 0, PAGE, { conditions: { leaseId } }),
    412,
    "LeaseNotPresentWithBlobOperation",
  );

  let etag;
  await check("get properties: size and ETag", async () => {
    const props = await blob.getProperties();
    etag = props.etag;
    return expectSame(props.contentLength, model.size, "Content-Length");
  });
  await expectError(
    "If-Match a stale ETag",
    () => blob.uploadPages(data, PAGE, PAGE, { conditions: { ifMatch: '"0x8D0000000000000"' } }),
    412,
    "ConditionNotMet",
  );
  await check("If-Match the current ETag", async () => {
    const r = await blob.uploadPages(data, PAGE, PAGE, { conditions: { ifMatch: etag } });
    model.write(PAGE, data);
    expect(r.etag !== etag, "the ETag did not change");
  });
  await expectError("If-None-Match the current ETag on a read", async () => {
    const current = (await blob.getProperties()).etag;
    await blob.download(0, PAGE, { conditions: { ifNoneMatch: current } });
  }, 304);
  await expectError(
    "create with If-None-Match: * over an existing blob",
    () => blob.create(model.size, { conditions: { ifNoneMatch: "*" } }),
    409,
    "BlobAlreadyExists",
  );
  await check("the blob is intact after every refusal", async () =>
    expectBytes((await download(blob, 0)).bytes, model.read(0, model.size), "blob"));

  await expectError("download a missing blob", () => container.getPageBlobClient("missing").download(), 404, "BlobNotFound");
  await expectError(
    "a missing container",
    () => new BlobServiceClient(`${BLOB}/${account}`, key, PIPELINE).getContainerClient(`none${RUN}`).getProperties(),
    404,
    "ContainerNotFound",
  );
  await expectError("unaligned Put Page", () => blob.uploadPages(pattern(1, PAGE), 100, PAGE), 400, "InvalidHeaderValue");
  await expectError("Put Page beyond the end", () => blob.uploadPages(data, model.size, PAGE), 416, "InvalidPageRange");
  await expectError("Get Blob beyond the end", () => blob.download(model.size + PAGE, PAGE), 416, "InvalidRange");
  await expectError(
    "Put Page with a wrong Content-MD5",
    () => blob.uploadPages(data, 0, PAGE, { transactionalContentMD5: md5(new Uint8Array(1)) }),
    400,
    "Md5Mismatch",
  );
  await expectError(
    "Put Page with a wrong x-ms-content-crc64",
    () => blob.uploadPages(data, 0, PAGE, { transactionalContentCrc64: crc64(new Uint8Array(1)) }),
    400,
    "Crc64Mismatch",
  );
  await expectError(
    "Shared Key with a wrong key",
    () => {
      const wrong = new StorageSharedKeyCredential(account, randomBytes(64).toString("base64"));
      return new PageBlobClient(blob.url, wrong, PIPELINE).getProperties();
    },
    403,
    "AuthenticationFailed",
  );
  await expectError(
    "a read-only SAS used to write",
    () => {
      const readOnly = `${blob.url}?${sasFor(key, "crossclient", "disk.vhd", "r")}`;
      return new PageBlobClient(readOnly, new AnonymousCredential(), PIPELINE).uploadPages(data, 0, PAGE);
    },
    403,
    "AuthorizationPermissionMismatch",
  );
  await expectError(
    "a bearer token the service did not issue",
    () => new BlobServiceClient(`${BLOB}/${account}`, tokenCredential("not-a-token"), PIPELINE)
      .getContainerClient("crossclient").getPageBlobClient("disk.vhd").getProperties(),
    401,
    "InvalidAuthenticationInfo",
  );
}

// --- 3. ARM: a managed disk, two incremental snapshots, SAS grants, md- reads and diffs -------

class ArmError extends Error {
  constructor(status, code, message) {
    super(message);
    this.statusCode = status;
    this.code = code;
  }
}

async function armFetch(url, method = "GET", body = undefined, token = TOKEN) {
  const response = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ArmError(response.status, json?.error?.code, json?.error?.message ?? text);
  return { response, json };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One ARM long-running operation, polled as @azure/core-lro does: the first poll at once, later
 * ones after Retry-After. PUT returns the resource (a final GET), POST the Location URL's result. */
async function lro(method, path, body) {
  const url = `${ARM}${path}?api-version=${ARM_API}`;
  const { response, json } = await armFetch(url, method, body);
  if (response.status !== 202) return json;
  const status = response.headers.get("azure-asyncoperation");
  const location = response.headers.get("location");
  let wait = 0;
  for (let poll = 0; poll < LRO_POLLS; poll++) {
    await sleep(wait);
    const { response: polled, json: state } = await armFetch(status);
    if (state.status === "Succeeded") {
      if (method === "PUT" || method === "PATCH") return (await armFetch(url)).json;
      return location ? (await armFetch(location)).json : null;
    }
    if (state.status !== "InProgress") throw new ArmError(200, state.error?.code, `operation ${state.status}`);
    wait = 1000 * Number(polled.headers.get("retry-after") ?? 1);
  }
  throw new Error(`${method} ${path}: not finished after ${LRO_POLLS} polls`);
}

async function managedDiskFlow() {
  const group = `js-rg-${RUN}`;
  const prefix = `/subscriptions/${SUB}/resourceGroups/${group}/providers/Microsoft.Compute`;
  const diskPath = `${prefix}/disks/jsdisk`;
  const size = 16 * MiB; // data; the VHD's 512-byte footer follows it in the imported blob

  // The import source: a page blob in an ordinary account, written with Shared Key.
  const account = `jsimp${RUN}`;
  const key = new StorageSharedKeyCredential(account, KEY);
  const container = new BlobServiceClient(`${BLOB}/${account}`, key, PIPELINE).getContainerClient("vhds");
  const source = container.getPageBlobClient("source.vhd");
  const disk = new PageModel(size + PAGE);
  await check("ARM: import source written", async () => {
    await container.create();
    await source.create(size + PAGE);
    for (const [offset, length, seed] of [[0, 4 * PAGE, 51], [3 * MiB, MiB, 52], [9 * MiB + PAGE, 6 * PAGE, 53]]) {
      const data = pattern(seed, length);
      await source.uploadPages(data, offset, length);
      disk.write(offset, data);
    }
  });
  await expectError("ARM: get a missing disk", () => lro("GET", diskPath), 404, "ResourceNotFound");
  await expectError(
    "ARM: a request without a valid token",
    () => armFetch(`${ARM}${diskPath}?api-version=${ARM_API}`, "GET", undefined, "not-a-token"),
    401,
    "InvalidAuthenticationToken",
  );
  await check("ARM: create a disk by Import", async () => {
    const created = await lro("PUT", diskPath, {
      location: "westeurope",
      sku: { name: "Standard_LRS" },
      properties: {
        creationData: {
          createOption: "Import",
          sourceUri: source.url,
          storageAccountId: `/subscriptions/${SUB}/resourceGroups/${group}/providers/Microsoft.Storage/storageAccounts/${account}`,
        },
      },
    });
    expectSame(created.properties.provisioningState, "Succeeded", "provisioningState");
    return expectSame(created.properties.diskSizeBytes, size, "diskSizeBytes");
  });

  /** A VM's writes, through a Write SAS from beginGetAccess, revoked after. */
  const writeThroughSas = async (writes, clears) => {
    const sas = (await lro("POST", `${diskPath}/beginGetAccess`, { access: "Write", durationInSeconds: 600 })).accessSAS;
    const client = new PageBlobClient(sas, new AnonymousCredential(), PIPELINE);
    for (const [offset, length, seed] of writes) {
      const data = pattern(seed, length);
      await client.uploadPages(data, offset, length);
      disk.write(offset, data);
    }
    for (const [offset, length] of clears) {
      await client.clearPages(offset, length);
      disk.clear(offset, length);
    }
    await lro("POST", `${diskPath}/endGetAccess`);
    return client;
  };
  const snapshot = async (name) => {
    const snap = await lro("PUT", `${prefix}/snapshots/${name}`, {
      location: "westeurope",
      properties: { incremental: true, creationData: { createOption: "Copy", sourceResourceId: diskPath } },
    });
    expect(snap.properties.incremental === true, "not incremental");
    return snap;
  };
  const grantRead = async (name) =>
    (await lro("POST", `${prefix}/snapshots/${name}/beginGetAccess`, { access: "Read", durationInSeconds: 600 })).accessSAS;

  let m1;
  let m2;
  let writer;
  await check("ARM: write through a disk Write SAS, then revoke", async () => {
    writer = await writeThroughSas([[MiB, 8 * PAGE, 61], [3 * MiB + 4 * PAGE, 4 * PAGE, 62]], [[2 * PAGE, PAGE]]);
  });
  await expectError("md- Write SAS refused after endGetAccess", () => writer.uploadPages(pattern(1, PAGE), 0, PAGE), 403);
  await check("ARM: incremental snapshot 1", async () => {
    const snap = await snapshot("jssnap1");
    m1 = disk.freeze();
    return snap.properties.incrementalSnapshotFamilyId ? "family id set" : "no family id";
  });
  await check("ARM: more writes, incremental snapshot 2", async () => {
    await writeThroughSas([[0, PAGE, 71], [3 * MiB + 8 * PAGE, 16 * PAGE, 72], [12 * MiB, 2 * MiB, 73]], [[9 * MiB, 4 * PAGE], [14 * MiB, PAGE]]);
    await snapshot("jssnap2");
    m2 = disk.freeze();
  });
  let sas1;
  let sas2;
  await check("ARM: beginGetAccess Read on both snapshots", async () => {
    sas1 = await grantRead("jssnap1");
    sas2 = await grantRead("jssnap2");
    expect(new URL(sas2).pathname.split("/")[1].startsWith("md-"), "the SAS is not on an md- account");
  });
  const snap1 = new PageBlobClient(sas1 ?? "https://invalid/", new AnonymousCredential(), PIPELINE);
  const snap2 = new PageBlobClient(sas2 ?? "https://invalid/", new AnonymousCredential(), PIPELINE);
  await check("md- SAS: snapshot 2's bytes", async () =>
    expectBytes((await download(snap2, 0, size)).bytes, m2.read(0, size), "snapshot 2"));
  await check("md- SAS: snapshot 1's bytes (a later snapshot changed nothing)", async () =>
    expectBytes((await download(snap1, 0, size)).bytes, m1.read(0, size), "snapshot 1"));
  await check("md- SAS: valid ranges of snapshot 2, paged by 3", async () => {
    const { ranges } = await allPages(snap2.listPageRanges(0, size), 3);
    return expectSame(ranges, m2.valid(0, size), "ranges");
  });
  let diff = [];
  await check("md- SAS: diff snapshot 2 vs snapshot 1 by the previous snapshot's SAS URL", async () => {
    diff = pageOf(await snap2.getPageRangesDiffForManagedDisks(0, size, sas1));
    return expectSame(diff, m2.diff(m1, 0, size), "changed ranges");
  });
  await expectError("md- SAS: a snapshot is read-only", () => snap2.uploadPages(pattern(1, PAGE), 0, PAGE), 403);

  // What the replicator does: a full copy of snapshot 1 by Put Page From URL, then snapshot 2's
  // diff applied (changed ranges copied, cleared ranges cleared); the target must equal snapshot 2.
  await check("replicate in JS: full copy of snapshot 1, then the diff to snapshot 2", async () => {
    const target = container.getPageBlobClient("replica.vhd");
    await target.create(size);
    const copyRanges = async (from, ranges) => {
      for (const [start, end] of ranges) {
        for (let at = start; at < end; at += 4 * MiB) await target.uploadPagesFromURL(from, at, at, Math.min(4 * MiB, end - at));
      }
    };
    await copyRanges(sas1, m1.valid(0, size));
    expectBytes((await download(target, 0)).bytes, m1.read(0, size), "after the full copy");
    await copyRanges(sas2, diff.filter((r) => !r[2]));
    for (const [start, end] of diff.filter((r) => r[2])) await target.clearPages(start, end - start);
    return expectBytes((await download(target, 0)).bytes, m2.read(0, size), "after the diff");
  });

  await check("ARM: endGetAccess on both snapshots", async () => {
    await lro("POST", `${prefix}/snapshots/jssnap1/endGetAccess`);
    await lro("POST", `${prefix}/snapshots/jssnap2/endGetAccess`);
  });
  await expectError("md- SAS refused after endGetAccess", () => snap2.download(0, PAGE), 403);
  await check("ARM: delete the snapshots and the disk", async () => {
    for (const path of [`${prefix}/snapshots/jssnap2`, `${prefix}/snapshots/jssnap1`, diskPath]) await lro("DELETE", path);
  });
  await expectError("ARM: the deleted disk is gone", () => lro("GET", diskPath), 404, "ResourceNotFound");
}

// --- run --------------------------------------------------------------------------------------

/** A section that throws outside its checks is one failed check, never a stack trace (which could
 * print a request, SAS and all). */
async function section(name, body) {
  try {
    return await body();
  } catch (e) {
    checks.push({ name: `${name}: stopped`, ok: false, detail: describe(e) });
    return undefined;
  }
}

const surface = await section("page blob surface", pageBlobSurface);
if (surface) await section("leases, conditions and errors", () => leasesConditionsErrors(surface));
await section("managed disk flow", managedDiskFlow);
const failed = checks.filter((c) => !c.ok).length;
console.log(JSON.stringify({ checks, failed }, null, 1));
process.exit(failed ? 1 : 0);
