// What the checks share around @azure/storage-blob: one-try clients, downloads, Get Page Ranges
// answers as [start, end, cleared] triples, SAS, a token credential, and a raw Shared Key request.

import { createHmac } from "node:crypto";

import { BlobSASPermissions, generateBlobSASQueryParameters } from "@azure/storage-blob";

import { expect } from "./checks.mjs";
import { BLOB, KEY } from "./env.mjs";

// One try per request: a retried 5xx would hide an emulator fault these checks exist to see.
export const PIPELINE = { retryOptions: { maxTries: 1 } };

export async function readAll(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return new Uint8Array(Buffer.concat(parts));
}

export async function download(client, offset, count, options = {}) {
  const response = await client.download(offset, count, options);
  return { response, bytes: await readAll(response.readableStreamBody) };
}

/** A page of Get Page Ranges as [start, end, cleared] triples in offset order (the SDK splits
 * PageRange and ClearRange into two arrays; Azure interleaves them). Paged listings give Azure's
 * inclusive {start, end}; getPageRangesDiff* give {offset, count} where the SDK computes count as
 * end - start of the inclusive range, one less than the length (rangeResponseFromModel, 12.32). */
export function pageOf(response) {
  const half = (r) => (r.offset === undefined ? [r.start, r.end + 1] : [r.offset, r.offset + r.count + 1]);
  const ranges = [
    ...(response.pageRange ?? []).map((r) => [...half(r), false]),
    ...(response.clearRange ?? []).map((r) => [...half(r), true]),
  ];
  return ranges.sort((a, b) => a[0] - b[0]);
}

/** Every range of an item-by-item listing (listPageRanges, listPageRangesDiff) as triples. */
export async function listed(items) {
  const ranges = [];
  for await (const r of items) ranges.push([r.start, r.end + 1, Boolean(r.isClear)]);
  return ranges;
}

/** Every page of a paged listing: the ranges, the page count; each page within `maxPageSize` and
 * carrying a continuation token unless it is the last. */
export async function allPages(pager, maxPageSize) {
  const ranges = [];
  const pages = [];
  for await (const page of pager.byPage({ maxPageSize })) pages.push(page);
  pages.forEach((page, i) => {
    const got = pageOf(page);
    expect(got.length <= maxPageSize, `page ${i} holds ${got.length} ranges, more than ${maxPageSize}`);
    expect(Boolean(page.continuationToken) === i < pages.length - 1, `page ${i}: continuation token wrong`);
    ranges.push(...got);
  });
  return { ranges, pages };
}

export function sasFor(credential, container, blob, permissions, snapshotTime) {
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
export async function sharedKeyGet(account, path, range, rangeSlot = true) {
  const headers = { "x-ms-date": new Date().toUTCString(), "x-ms-version": "2021-08-06", Range: range };
  const slots = [
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
  ];
  const canonical = Object.keys(headers)
    .filter((name) => name.startsWith("x-ms-"))
    .sort()
    .map((name) => `${name}:${headers[name]}\n`)
    .join("");
  const toSign =
    ["GET", ...slots.map(() => ""), rangeSlot ? range : ""].join("\n") + `\n${canonical}/${account}${path}`;
  const signature = createHmac("sha256", Buffer.from(KEY, "base64")).update(toSign, "utf8").digest("base64");
  return fetch(`${BLOB}${path}`, {
    headers: { ...headers, Authorization: `SharedKey ${account}:${signature}` },
  });
}

export function tokenCredential(token) {
  return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600 * 1000 }) };
}
